package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/migrations"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/cassandra"
	"github.com/heraldhq/herald/store/embedded"
	"github.com/heraldhq/herald/topics"
)

// OpenStore opens the store cfg names: "cassandra" (production) or
// "embedded" (one process only: the file is locked).
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store {
	case "cassandra":
		return cassandra.Open(ctx, cassandra.Config{
			Hosts: cfg.CassandraHosts, Keyspace: cfg.CassandraKeyspace, Consistency: cfg.CassandraConsist, Logger: log,
		})
	case "embedded":
		return embedded.Open(embedded.Config{Path: cfg.StorePath, Logger: log})
	}
	return nil, fmt.Errorf("unknown store %q: want cassandra or embedded", cfg.Store)
}

// Migrate creates the Cassandra keyspace if needed and applies the schema
// migrations; safe to run twice and concurrently.
func Migrate(ctx context.Context, cfg *config.Config) error {
	repl, err := migrations.ParseReplication(cfg.CassandraRepl)
	if err != nil {
		return err
	}
	st, err := cassandra.OpenAndMigrate(ctx, cassandra.Config{
		Hosts: cfg.CassandraHosts, Keyspace: cfg.CassandraKeyspace, Consistency: cfg.CassandraConsist,
		Replication: repl, Logger: cfg.Logger(),
		// Schema changes wait for agreement and can be slow on a busy node.
		Timeout: time.Minute,
	})
	if err != nil {
		return err
	}
	return st.Close()
}

// verifier builds the user-token verifier from cfg.
func verifier(cfg *config.Config) (*auth.Verifier, error) {
	ac := auth.Config{}
	if cfg.JWTSecret != "" {
		ac.HMACSecrets = [][]byte{[]byte(cfg.JWTSecret)}
	}
	for _, f := range cfg.JWTPublicKeys {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("jwt public key: %w", err)
		}
		ac.PublicKeysPEM = append(ac.PublicKeysPEM, pem)
	}
	if len(ac.HMACSecrets) == 0 && len(ac.PublicKeysPEM) == 0 {
		return nil, errors.New("no user-token key: set --jwt-secret or --jwt-public-keys")
	}
	return auth.NewVerifier(ac)
}

// role is what every production role shares: a logger, an HTTP server
// (user API or just health and metrics), tracked goroutines and an
// ordered, once-only shutdown.
type role struct {
	cfg   *config.Config
	log   *slog.Logger
	g     group
	http  *http.Server
	ln    net.Listener
	stops []func() // run in order at shutdown, after the listener closes
}

func newRole(cfg *config.Config, name string) *role {
	return &role{cfg: cfg, log: cfg.Logger().With("role", name)}
}

// serve starts the HTTP server on cfg.Addr.
func (r *role) serve(h http.Handler) error {
	ln, err := net.Listen("tcp", r.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.cfg.Addr, err)
	}
	r.ln = ln
	r.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	r.g.Go(func() error {
		if err := r.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	r.log.Info("listening", "addr", ln.Addr().String())
	return nil
}

// wait blocks until ctx ends, then shuts down: stop intake (listener), then
// the stops in order, then waits for every goroutine.
func (r *role) wait(ctx context.Context) error {
	<-ctx.Done()
	r.log.Info("shutting down")
	// ctx is done: shut down on its values, without its cancellation.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
	defer cancel()
	httpDone := make(chan error, 1)
	if r.http != nil {
		go func() { httpDone <- r.http.Shutdown(sctx) }()
	} else {
		httpDone <- nil
	}
	for _, stop := range r.stops {
		stop()
	}
	return errors.Join(<-httpDone, r.g.Wait())
}

func kafkaClient(cfg *config.Config) (*kgo.Client, error) {
	return kgo.NewClient(pipeline.ClientOptions(cfg.Brokers)...)
}

// RunAPI serves the HTTP API: event intake to Kafka and the user endpoints
// on the store. It blocks until ctx ends.
func RunAPI(ctx context.Context, cfg *config.Config) error {
	r := newRole(cfg, "api")
	st, err := OpenStore(ctx, cfg, r.log)
	if err != nil {
		return err
	}
	defer r.closeStore(st)
	// Writes go through the preference cache so that they invalidate what
	// the enrichers have cached.
	st, closePrefs, err := prefStore(cfg, st)
	if err != nil {
		return err
	}
	defer closePrefs()
	cl, err := kafkaClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	v, err := verifier(cfg)
	if err != nil {
		return err
	}
	keys, err := auth.NewAPIKeys(cfg.APIKeys...)
	if err != nil {
		return err
	}
	unread, stopUnread, err := unreadPublisher(ctx, cfg, r)
	if err != nil {
		return err
	}
	r.stops = append(r.stops, stopUnread)
	srv, err := api.New(api.Config{
		Store: st, Producer: cl, EventsTopic: topics.WithPrefix(cfg.TopicPrefix).Events,
		Users: v, Keys: keys, Unread: unread, Logger: r.log, CORSOrigins: cfg.Origins,
		EventsPerKey: limit(cfg.RateKey), RequestsPerUser: limit(cfg.RateUser),
		Ready: []api.ReadyCheck{{Name: "store", Check: st.Ping}, {Name: "kafka", Check: cl.Ping}},
	})
	if err != nil {
		return err
	}
	if err := r.serve(srv); err != nil {
		return err
	}
	return r.wait(ctx)
}

// RunEnricher runs the transactional enricher until ctx ends.
func RunEnricher(ctx context.Context, cfg *config.Config) error {
	r := newRole(cfg, "enricher")
	st, err := OpenStore(ctx, cfg, r.log)
	if err != nil {
		return err
	}
	defer r.closeStore(st)
	prefs, closePrefs, err := prefStore(cfg, st)
	if err != nil {
		return err
	}
	defer closePrefs()
	cl, err := kafkaClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := r.serve(api.Ops([]api.ReadyCheck{{Name: "store", Check: st.Ping}, {Name: "kafka", Check: cl.Ping}}, nil)); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := supervise(runCtx, &r.g, r.log, "enricher", func() (runner, error) {
		return pipeline.NewEnricher(pipeline.EnricherConfig{
			Brokers: cfg.Brokers, Topics: topics.WithPrefix(cfg.TopicPrefix), Store: prefs,
			Group: groupName(cfg, "enricher"), TransactionalID: cfg.TransactionalID, Logger: r.log,
			ClientOptions: []kgo.Opt{kgo.SessionTimeout(cfg.SessionTimeout)},
		})
	})
	r.stops = append(r.stops, stop)
	return r.wait(ctx)
}

// RunGateway serves WebSockets and consumes herald.deliveries until ctx
// ends. With --redis it registers presence and routes to other gateways.
func RunGateway(ctx context.Context, cfg *config.Config) error {
	r := newRole(cfg, "gateway").With("gateway", cfg.GatewayID)
	st, err := OpenStore(ctx, cfg, r.log)
	if err != nil {
		return err
	}
	defer r.closeStore(st)
	v, err := verifier(cfg)
	if err != nil {
		return err
	}
	cl, err := kafkaClient(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	gw, deliverer, routingChecks, routingStop, err := gatewayWithRouting(ctx, cfg, r, st, v)
	if err != nil {
		return err
	}
	checks := append([]api.ReadyCheck{{Name: "store", Check: st.Ping}, {Name: "kafka", Check: cl.Ping}}, routingChecks...)
	if err := r.serve(api.Ops(checks, map[string]http.Handler{"/v1/ws": gw})); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopRouter := supervise(runCtx, &r.g, r.log, "router", func() (runner, error) {
		return pipeline.NewRouter(pipeline.RouterConfig{
			Brokers: cfg.Brokers, Topics: topics.WithPrefix(cfg.TopicPrefix), Deliverer: deliverer, Logger: r.log,
			Group: groupName(cfg, "gateway"), StartAtEnd: cfg.RouterFromEnd,
			ClientOptions: []kgo.Opt{kgo.SessionTimeout(cfg.SessionTimeout)},
		})
	})
	// Order: stop consuming, close sockets with 1012, then leave the cluster.
	r.stops = append(r.stops, stopRouter, func() {
		// Runs after ctx has ended (from r.wait): detach from its cancellation.
		sctx, c := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer c()
		if err := gw.Shutdown(sctx); err != nil {
			r.log.Warn("gateway shutdown", "err", err)
		}
	}, routingStop)
	return r.wait(ctx)
}

func limit(perSecond float64) api.Limit {
	r, b := config.Limit(perSecond)
	return api.Limit{Rate: r, Burst: b}
}

// groupName derives a consumer group from the topic prefix, so that two
// deployments sharing a Kafka cluster (or two test runs) never share a group:
// "herald." gives "herald.enricher" and "herald.gateway".
func groupName(cfg *config.Config, role string) string {
	return topics.WithPrefix(cfg.TopicPrefix).Prefix() + role
}

// closeStore closes st at shutdown; a failure is only logged, as there is
// nothing left to do about it.
func (r *role) closeStore(st store.Store) {
	if err := st.Close(); err != nil {
		r.log.Warn("closing the store", "err", err)
	}
}

// With returns r with extra log attributes.
func (r *role) With(args ...any) *role {
	r.log = r.log.With(args...)
	return r
}
