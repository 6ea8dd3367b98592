package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store/embedded"
	"github.com/heraldhq/herald/topics"
)

// DevConfig configures `herald dev`: every role in one process on the
// embedded defaults (kfake with a data dir, the bbolt store, in-memory
// presence).
type DevConfig struct {
	// DataDir holds Kafka's log, the store and the dev secrets; "" means ".herald".
	DataDir string
	// Addr is the HTTP listen address; "" means ":8080". Use "127.0.0.1:0" in tests.
	Addr string
	// KafkaPort is the embedded Kafka's port on 127.0.0.1; 0 means any free port.
	KafkaPort int
	// TopicPrefix; "" means "herald.".
	TopicPrefix string
	// ReplayLimit for WebSocket connections without after; 0 means the gateway default.
	ReplayLimit int
	// Origins allowed to open WebSockets; nil means same host only.
	Origins []string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Dev is a running `herald dev`.
type Dev struct {
	cfg      DevConfig
	log      *slog.Logger
	secrets  DevSecrets
	cluster  *kfake.Cluster
	store    *embedded.Store
	producer *kgo.Client
	gateway  *delivery.Gateway
	http     *http.Server
	ln       net.Listener
	g        group
	cancel   context.CancelFunc // ends the roles' context

	stopEnricher, stopRouter func()
	shutdownOnce             sync.Once
	shutdownErr              error
}

// StartDev starts every role and returns once the HTTP server listens.
// ctx bounds start-up only; stop the result with Shutdown.
func StartDev(ctx context.Context, cfg DevConfig) (_ *Dev, err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = ".herald"
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names := topics.WithPrefix(cfg.TopicPrefix)
	d := &Dev{cfg: cfg, log: cfg.Logger}
	// The roles outlive ctx (it bounds start-up only); Shutdown cancels them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	defer func() {
		if err != nil {
			d.closeResources()
		}
	}()

	if d.secrets, err = LoadDevSecrets(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("dev secrets: %w", err)
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(cfg.DataDir, "kafka"))}
	if cfg.KafkaPort != 0 {
		kopts = append(kopts, kfake.Ports(cfg.KafkaPort))
	}
	if d.cluster, err = kfake.NewCluster(kopts...); err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	brokers := d.cluster.ListenAddrs()

	if d.store, err = embedded.Open(embedded.Config{Path: filepath.Join(cfg.DataDir, "herald.db"), Logger: d.log}); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if d.producer, err = kgo.NewClient(pipeline.ClientOptions(brokers)...); err != nil {
		return nil, err
	}
	if err = topics.Apply(ctx, kadm.NewClient(d.producer), cfg.TopicPrefix, -1); err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}

	verifier, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{[]byte(d.secrets.JWTSecret)}})
	if err != nil {
		return nil, err
	}
	keys, err := auth.NewAPIKeys(d.secrets.APIKey)
	if err != nil {
		return nil, err
	}
	if d.gateway, err = delivery.New(delivery.Config{
		Store: d.store, Verifier: verifier, Logger: d.log,
		ReplayLimit: cfg.ReplayLimit, AllowedOrigins: cfg.Origins,
	}); err != nil {
		return nil, err
	}
	apiSrv, err := api.New(api.Config{
		Store: d.store, Producer: d.producer, EventsTopic: names.Events,
		Users: verifier, Keys: keys, Unread: d.gateway, WebSocket: d.gateway, Logger: d.log, CORSOrigins: cfg.Origins,
		Ready: []api.ReadyCheck{{Name: "store", Check: d.store.Ping}, {Name: "kafka", Check: d.producer.Ping}},
	})
	if err != nil {
		return nil, err
	}

	d.stopEnricher = supervise(runCtx, &d.g, d.log, "enricher", func() (runner, error) {
		return pipeline.NewEnricher(pipeline.EnricherConfig{
			Brokers: brokers, Topics: names, Store: d.store, Logger: d.log.With("role", "enricher"),
			Group: names.Prefix() + "enricher", TransactionalID: "herald-dev-enricher",
		})
	})
	d.stopRouter = supervise(runCtx, &d.g, d.log, "router", func() (runner, error) {
		return pipeline.NewRouter(pipeline.RouterConfig{
			Brokers: brokers, Topics: names, Deliverer: d.gateway, Logger: d.log.With("role", "router"),
			Group: names.Prefix() + "gateway",
		})
	})

	if d.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	d.http = &http.Server{Handler: apiSrv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	d.g.Go(func() error {
		if err := d.http.Serve(d.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	return d, nil
}

// URL is the base HTTP URL of the running server.
func (d *Dev) URL() string {
	host, port, _ := net.SplitHostPort(d.ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// KafkaAddrs are the embedded Kafka's listen addresses.
func (d *Dev) KafkaAddrs() []string { return d.cluster.ListenAddrs() }

// Secrets are the dev API key and JWT secret.
func (d *Dev) Secrets() DevSecrets { return d.secrets }

// Shutdown stops the process in order: stop intake (HTTP listener), stop
// the enricher (its open transaction ends) and the router (it commits what
// it delivered), close the WebSockets with 1012, then close Kafka clients,
// the store and the embedded Kafka. It is idempotent; later calls return
// the first result.
func (d *Dev) Shutdown(ctx context.Context) error {
	d.shutdownOnce.Do(func() {
		var errs []error
		httpDone := make(chan error, 1)
		go func() { httpDone <- d.http.Shutdown(ctx) }() // closes the listener at once
		d.stopEnricher()
		d.stopRouter()
		if err := d.gateway.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: %w", err))
		}
		if err := <-httpDone; err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		d.cancel()
		if err := d.g.Wait(); err != nil {
			errs = append(errs, err)
		}
		d.closeResources()
		d.shutdownErr = errors.Join(errs...)
	})
	return d.shutdownErr
}

func (d *Dev) closeResources() {
	d.cancel()
	if d.producer != nil {
		d.producer.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
	if d.cluster != nil {
		d.cluster.Close()
	}
}

// Banner is what `herald dev` prints once it is up.
func (d *Dev) Banner(self string) string {
	return fmt.Sprintf(`Herald dev is running.
  HTTP API     %[1]s   (WebSocket: %[2]s/v1/ws?token=…)
  Kafka        %[3]s   (topics %[4]sevents, …)
  data dir     %[5]s
  API key      %[6]s

Try it:
  %[7]s token u-1                                   # mint a user token
  %[7]s send --user u-1 --type mention --title Hi   # post an event
  curl -H "Authorization: Bearer $(%[7]s token u-1)" %[1]s/v1/notifications
`, d.URL(), "ws"+d.URL()[len("http"):], d.cluster.ListenAddrs()[0], orDefault(d.cfg.TopicPrefix, topics.DefaultPrefix),
		d.cfg.DataDir, d.secrets.APIKey, self)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
