package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/app/demo"
	jsclient "github.com/heraldhq/herald/clients/js"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/store/embedded"
	"github.com/heraldhq/herald/topics"
)

// DevConfig configures `herald dev`: every role in one process on the
// embedded defaults (kfake with a data dir, the bbolt store, in-memory
// presence), the pusher sending to in-process fake APNs and FCM (the
// dev app, DevApp, besides any app of the Settings' push section).
type DevConfig struct {
	// Settings are herald dev's parsed settings (DevConfigFrom): every
	// setting the dev role registers reaches the roles through them, and
	// the fields below override them where set. Nil means
	// config.Defaults("dev").
	Settings *config.Config
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
	// Origins allowed to open WebSockets and call the API from a browser;
	// nil means same host only.
	Origins []string
	// RateKey and RateUser are the API's rate limits (events/s per API
	// key, requests/s per user; bursts of twice that); 0 means no limit.
	RateKey, RateUser float64
	// JWTSecret and JWTPublicKeys are accepted for user tokens besides the
	// dev secret; zero values mean the dev secret only.
	JWTSecret     string
	JWTPublicKeys []string
	// APIKeys are accepted besides the dev API key.
	APIKeys []string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DevConfigFrom takes herald dev's settings from cfg.
func DevConfigFrom(cfg *config.Config) DevConfig {
	return DevConfig{
		Settings: cfg,
		DataDir:  cfg.DataDir, Addr: cfg.Addr, KafkaPort: cfg.KafkaPort, TopicPrefix: cfg.TopicPrefix,
		ReplayLimit: cfg.ReplayLimit, Origins: cfg.Origins, RateKey: cfg.RateKey, RateUser: cfg.RateUser,
		JWTSecret: cfg.JWTSecret, JWTPublicKeys: cfg.JWTPublicKeys, APIKeys: cfg.APIKeys,
	}
}

// Dev is a running `herald dev`.
type Dev struct {
	cfg     DevConfig
	secrets DevSecrets
	cluster *kfake.Cluster
	fakes   *pushfake.Fakes
	p       *Process
}

// StartDev starts every role and returns once the HTTP server listens: the
// same builders as the production roles, over kfake, the embedded store
// and local presence. ctx bounds start-up only; stop the result with
// Shutdown.
func StartDev(ctx context.Context, dc DevConfig) (_ *Dev, err error) {
	if dc.DataDir == "" {
		dc.DataDir = ".herald"
	}
	if dc.Addr == "" {
		dc.Addr = ":8080"
	}
	if dc.Logger == nil {
		dc.Logger = slog.Default()
	}
	cfg := config.Defaults("dev")
	if dc.Settings != nil {
		copied := *dc.Settings
		cfg = &copied
	}
	cfg.Addr, cfg.TopicPrefix, cfg.Origins = dc.Addr, dc.TopicPrefix, dc.Origins
	cfg.ReplayLimit, cfg.RateKey, cfg.RateUser = dc.ReplayLimit, dc.RateKey, dc.RateUser
	cfg.JWTSecret, cfg.JWTPublicKeys, cfg.APIKeys = dc.JWTSecret, dc.JWTPublicKeys, dc.APIKeys
	cfg.Redis.URL = "" // local presence
	cfg.TransactionalID = "herald-dev-enricher"

	d := &Dev{cfg: dc}
	if d.secrets, err = LoadDevSecrets(dc.DataDir); err != nil {
		return nil, fmt.Errorf("dev secrets: %w", err)
	}
	v, err := verifier(cfg, [][]byte{[]byte(d.secrets.JWTSecret)})
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(dc.DataDir, "kafka"))}
	if dc.KafkaPort != 0 {
		kopts = append(kopts, kfake.Ports(dc.KafkaPort))
	}
	if d.cluster, err = kfake.NewCluster(kopts...); err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	st, err := embedded.Open(embedded.Config{Path: filepath.Join(dc.DataDir, "herald.db"), Logger: dc.Logger})
	if err != nil {
		d.cluster.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	d.p = NewProcess(ctx, cfg, Deps{Store: st, Brokers: d.cluster.ListenAddrs(), Verifier: v, Logger: dc.Logger})
	// The embedded Kafka closes last, after every client.
	d.p.closers = append([]func(){d.cluster.Close}, d.p.closers...)
	defer func() {
		if err != nil {
			_ = d.p.Shutdown(context.WithoutCancel(ctx))
		}
	}()

	admin, err := d.p.Kafka()
	if err != nil {
		return nil, err
	}
	if err = topics.Apply(ctx, kadm.NewClient(admin), dc.TopicPrefix, -1); err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	if _, err = topics.Ensure(ctx, kadm.NewClient(admin), topics.PushRetrySpecs(d.p.names, devRetryTiers), -1); err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	if d.fakes, err = pushfake.Start(ctx, pushfake.Config{Logger: dc.Logger}); err != nil {
		return nil, fmt.Errorf("fake push providers: %w", err)
	}
	d.p.mu.Lock()
	// Closed after the pusher has stopped; Close takes no context (it
	// closes the fakes' listeners and connections at once).
	d.p.onClose(func() { _ = d.fakes.Close() }) //nolint:contextcheck // see above
	d.p.mu.Unlock()
	gw, err := d.p.AddGateway(ctx)
	if err != nil {
		return nil, err
	}
	if err = d.p.AddEnricher(ctx); err != nil {
		return nil, err
	}
	if err = d.p.AddPusher(ctx, PusherOptions{Apps: []push.App{DevApp(d.fakes)}, RetryTiers: devRetryTiers, FetchMaxWait: 250 * time.Millisecond}); err != nil {
		return nil, err
	}
	srv, err := d.p.AddAPI(ctx, APIOptions{WebSocket: gw, SSE: gw.SSE(), Waiter: gw, Unread: gw, Memberships: gw, APIKeys: []string{d.secrets.APIKey},
		DefaultAppID: cmp.Or(cfg.PushSettings().DefaultApp, config.DevApp), DevPushes: d.fakes.Handler(),
		DevJWTSecret: []byte(d.secrets.JWTSecret), DevAPIKey: d.secrets.APIKey, Root: demo.New(demo.Config{SDK: jsclient.Dist})})
	if err != nil {
		return nil, err
	}
	if err = d.p.Serve(srv); err != nil {
		return nil, err
	}
	return d, nil
}

// devRetryTiers are herald dev's push retry topics: short, so that a
// retry (about a second of backoff, or a provider's Retry-After: 1) is
// seen within seconds.
var devRetryTiers = []time.Duration{time.Second, 5 * time.Second}

// DevApp is herald dev's own app (config.DevApp, "dev"): the first key and
// service account of the fakes, their endpoints and CA.
func DevApp(f *pushfake.Fakes) push.App {
	k, sa := f.APNsKeys[0], f.FCMAccounts[0]
	return push.App{
		ID: config.DevApp,
		APNs: &push.APNsApp{Key: k.KeyPEM, KeyID: k.KeyID, TeamID: k.TeamID, Topic: k.Topic,
			Endpoint: f.APNsURL, CA: f.CAPEM},
		FCM: &push.FCMApp{Credentials: sa.CredentialsJSON, ProjectID: sa.ProjectID, Endpoint: f.FCMURL, CA: f.CAPEM},
	}
}

// Fakes are the in-process fake APNs and FCM the dev app pushes to.
func (d *Dev) Fakes() *pushfake.Fakes { return d.fakes }

// URL is the base HTTP URL of the running server.
func (d *Dev) URL() string {
	host, port, _ := net.SplitHostPort(d.p.Addr().String())
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
// the enricher (its open transaction ends), the router (it commits what
// it delivered) and the pusher (it commits what it settled), close the
// WebSockets with 1012, then close Kafka clients, the fake providers, the
// store and the embedded Kafka. It is idempotent; later calls return
// the first result.
func (d *Dev) Shutdown(ctx context.Context) error { return d.p.Shutdown(ctx) }

// Banner is what `herald dev` prints once it is up.
func (d *Dev) Banner(self string) string {
	return fmt.Sprintf(`Herald dev is running.
  Demo inbox   %[1]s/   (open it in a browser)
  HTTP API     %[1]s   (WebSocket: %[2]s/v1/ws?token=…)
  Kafka        %[3]s   (topics %[4]sevents, …)
  data dir     %[5]s
  API key      %[6]s

Try it:
  %[7]s token u-1                                   # mint a user token
  %[7]s send --user u-1 --type mention --title Hi   # post an event
  curl -H "Authorization: Bearer $(%[7]s token u-1)" %[1]s/v1/notifications

Push to a phone (app_id "dev": an in-process fake APNs and FCM):
  curl -H "Authorization: Bearer $(%[7]s token u-2)" -d '{"platform":"ios","token":"ok-1"}' %[1]s/v1/devices
  %[7]s send --user u-2 --type mention --title Hi   # u-2 has no socket open: pushed
  curl %[1]s/v1/dev/pushes   # what the fakes received
  Tokens unregistered-…, bad-…, flaky-… and down-… take the failure paths.
`, d.URL(), "ws"+d.URL()[len("http"):], d.cluster.ListenAddrs()[0], orDefault(d.cfg.TopicPrefix, topics.DefaultPrefix),
		d.cfg.DataDir, d.secrets.APIKey, self)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
