package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/lograte"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/cassandra"
	"github.com/heraldhq/herald/store/embedded"
	"github.com/heraldhq/herald/store/prefcache"
	"github.com/heraldhq/herald/topics"
)

// Shutdown phases, run in this order after the HTTP listener closes.
const (
	phaseEnricher = iota // end the open transaction
	phaseRouter          // commit what was delivered
	phasePusher          // finish the sends in flight, commit what was settled
	phaseSockets         // close WebSockets with 1012
	phaseCluster         // leave the Redis cluster (presence, unread fan-out)
	numPhases
)

// Deps are dependencies given to a Process instead of opened from its
// Config: herald dev passes its embedded store and kfake brokers, tests
// their fakes. Nil fields are opened from the Config when a role first
// needs them.
type Deps struct {
	// Store, when set, is the store of every role; the Process closes it.
	Store store.Store
	// Brokers, when set, replace the Config's Kafka settings (plaintext,
	// no SASL): the embedded Kafka.
	Brokers []string
	// Verifier, when set, verifies user tokens instead of one built from
	// the Config's JWT settings.
	Verifier *auth.Verifier
	// Logger; nil means the Config's.
	Logger *slog.Logger
	// Registerer receives every component's collectors; nil means
	// metrics.Registry (the one /metrics serves).
	Registerer prometheus.Registerer
}

// Process is one herald process: the dependencies its roles share,
// opened once on first use, the goroutines they run and the ordered
// shutdown. Build roles with AddAPI, AddEnricher, AddGateway and
// AddPusher, then Serve; stop with Shutdown.
type Process struct {
	cfg    *config.Config
	log    *slog.Logger
	reg    prometheus.Registerer
	names  topics.Names
	deps   Deps
	ctx    context.Context // the roles' context, canceled by Shutdown
	cancel context.CancelFunc
	g      lifecycle.Group

	mu       sync.Mutex
	store    store.Store
	prefs    store.Store
	redis    *redis.Client
	redisSet bool
	kafka    *kgo.Client
	kopts    []kgo.Opt
	verifier *auth.Verifier
	checks   []api.ReadyCheck
	// localLive is the gateway of this process as the enricher's direct
	// path, when it has no Redis (herald dev): set by AddGateway.
	localLive pipeline.LivePublisher
	// localGateway is this process's gateway when it has no Redis (herald
	// dev): the fan-out's list of connected members. Set by AddGateway.
	localGateway *delivery.Gateway
	stops        [numPhases][]func(context.Context)
	closers      []func() // run last, in reverse order

	http     *http.Server
	ln       net.Listener
	admin    *http.Server // --admin-addr (admin.go); nil when off
	adminLn  net.Listener
	shutOnce sync.Once
	shutErr  error

	// policy is the notification policy in force, reloaded on SIGHUP
	// (policy.go); reloads counts the reloads, nil until initPolicy.
	policy  atomic.Pointer[policy.Policy]
	reloads *prometheus.CounterVec
}

// NewProcess returns a Process for cfg. The roles it builds run until
// Shutdown, not until ctx ends: ctx only carries values.
func NewProcess(ctx context.Context, cfg *config.Config, deps Deps) *Process {
	log := deps.Logger
	if log == nil {
		log = cfg.Logger()
	}
	p := &Process{
		cfg: cfg, log: log, reg: metrics.Or(deps.Registerer),
		names: topics.WithPrefix(cfg.TopicPrefix), deps: deps, store: deps.Store, verifier: deps.Verifier,
	}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if deps.Store != nil {
		p.onClose(p.closeStore(deps.Store))
		p.check("store", deps.Store.Ping)
	}
	return p
}

// Logger is the process logger.
func (p *Process) Logger() *slog.Logger { return p.log }

// Registerer is where the process's collectors are registered.
func (p *Process) Registerer() prometheus.Registerer { return p.reg }

// Checks are the readiness checks of the dependencies opened so far.
func (p *Process) Checks() []api.ReadyCheck {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]api.ReadyCheck(nil), p.checks...)
}

func (p *Process) check(name string, f func(context.Context) error) {
	p.checks = append(p.checks, api.ReadyCheck{Name: name, Check: f})
}

func (p *Process) onClose(f func()) { p.closers = append(p.closers, f) }
func (p *Process) onStop(phase int, f func(context.Context)) {
	p.stops[phase] = append(p.stops[phase], f)
}

func (p *Process) closeStore(st store.Store) func() {
	return func() {
		if err := st.Close(); err != nil {
			p.log.Warn("closing the store", "err", err)
		}
	}
}

// Store is the process's store, opened on first use.
func (p *Process) Store(ctx context.Context) (store.Store, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.store != nil {
		return p.store, nil
	}
	st, err := OpenStore(ctx, p.cfg, p.log)
	if err != nil {
		return nil, err
	}
	p.store = st
	p.onClose(p.closeStore(st))
	p.check("store", st.Ping)
	return st, nil
}

// Prefs is the store with preference reads cached in Redis (and writes
// invalidating the cache) when Redis is configured; otherwise the store.
// Every role of the process shares it.
func (p *Process) Prefs(ctx context.Context) (store.Store, error) {
	st, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := p.Redis()
	if err != nil || rc == nil {
		return st, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prefs == nil {
		pc, err := prefcache.New(prefcache.Config{Store: st, Redis: rc, Logger: p.log, Registerer: p.reg})
		if err != nil {
			return nil, err
		}
		p.prefs = pc
		// The inner store is closed on its own; Close releases only the cache.
		p.onClose(func() { _ = pc.Close() })
	}
	return p.prefs, nil
}

// Redis is the process's one Redis client, shared by presence, routing
// and the preference cache; nil without a Redis URL (local only).
func (p *Process) Redis() (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.redisSet {
		return p.redis, nil
	}
	if p.cfg.Redis.URL == "" {
		p.redisSet = true
		return nil, nil
	}
	rc, err := p.cfg.Redis.Client()
	if err != nil {
		return nil, err
	}
	// go-redis logs its pool's dial failures on its own (one unstructured
	// stderr line per attempt during an outage); its logger is
	// process-global, so it is installed here, by the process that makes
	// the client, over this process's logger and rate-limited.
	lograte.SetRedisLogger(p.log, lograte.Config{})
	p.redis, p.redisSet = rc, true
	p.onClose(func() { _ = rc.Close() })
	p.check("redis", func(ctx context.Context) error { return rc.Ping(ctx).Err() })
	return rc, nil
}

// KafkaOptions are the franz-go options every Kafka client of the process
// starts from: seed brokers, TLS and SASL, then the given ones.
func (p *Process) KafkaOptions(extra ...kgo.Opt) ([]kgo.Opt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kopts == nil {
		if len(p.deps.Brokers) > 0 {
			p.kopts = []kgo.Opt{kgo.SeedBrokers(p.deps.Brokers...)}
		} else {
			opts, err := p.cfg.Kafka.Opts()
			if err != nil {
				return nil, err
			}
			p.kopts = opts
		}
	}
	return append(append([]kgo.Opt(nil), p.kopts...), extra...), nil
}

// Kafka is the process's shared producer and admin client (event intake,
// topic creation, the kafka readiness check).
func (p *Process) Kafka() (*kgo.Client, error) {
	opts, err := p.KafkaOptions()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kafka != nil {
		return p.kafka, nil
	}
	cl, err := kgo.NewClient(pipeline.ClientOptions(nil, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	p.kafka = cl
	p.onClose(cl.Close)
	p.check("kafka", cl.Ping)
	return cl, nil
}

// Verifier is the user-token verifier.
func (p *Process) Verifier() (*auth.Verifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, nil
	}
	v, err := verifier(p.cfg, nil)
	if err != nil {
		return nil, err
	}
	p.verifier = v
	return v, nil
}

// verifier builds the user-token verifier from cfg's JWT settings plus
// extra HMAC secrets (herald dev's own).
func verifier(cfg *config.Config, extra [][]byte) (*auth.Verifier, error) {
	ac := auth.Config{HMACSecrets: extra, MaxLifetime: cfg.JWTMaxLifetime}
	if cfg.JWTSecret != "" {
		ac.HMACSecrets = append(ac.HMACSecrets, []byte(cfg.JWTSecret))
	}
	for _, f := range cfg.JWTPublicKeys {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-keys: %w", err)
		}
		ac.PublicKeysPEM = append(ac.PublicKeysPEM, pem)
	}
	if len(ac.HMACSecrets) == 0 && len(ac.PublicKeysPEM) == 0 {
		return nil, errors.New("no user-token key: set --jwt-secret or --jwt-public-keys")
	}
	return auth.NewVerifier(ac)
}

// OpenStore opens the store cfg names: "cassandra" (production, with its
// credentials, TLS and local datacenter) or "embedded" (one process only:
// the file is locked). Errors start with the dependency's name.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store {
	case "cassandra":
		cc, err := cassandraConfig(cfg, log)
		if err != nil {
			return nil, err
		}
		st, err := cassandra.Open(ctx, cc)
		return st, dependency("cassandra", err)
	case "embedded":
		st, err := embedded.Open(embedded.Config{Path: cfg.StorePath, Logger: log})
		return st, dependency("embedded store", err)
	}
	return nil, fmt.Errorf("unknown store %q: want cassandra or embedded", cfg.Store)
}

func cassandraConfig(cfg *config.Config, log *slog.Logger) (cassandra.Config, error) {
	c := cfg.Cassandra
	tc, err := c.TLS.Config()
	if err != nil {
		return cassandra.Config{}, fmt.Errorf("cassandra: %w", err)
	}
	return cassandra.Config{
		Hosts: c.Hosts, Keyspace: c.Keyspace, Consistency: c.Consistency, LocalDC: c.LocalDC,
		Username: c.User, Password: c.Password, TLS: tc, Logger: log,
	}, nil
}

// dependency prefixes err with the dependency's name unless it already
// starts with it.
func dependency(name string, err error) error {
	if err == nil {
		return nil
	}
	if msg := err.Error(); len(msg) > len(name) && msg[:len(name)+1] == name+":" {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// supervise runs the components build makes until Shutdown, rebuilding
// one that fails, and stops it in the given shutdown phase.
func (p *Process) supervise(phase int, name string, build func() (lifecycle.Runner, error)) {
	stop := lifecycle.Supervise(p.ctx, &p.g, lifecycle.SuperviseConfig{Name: name, Logger: p.log}, build)
	p.mu.Lock()
	p.onStop(phase, func(context.Context) { stop() })
	p.mu.Unlock()
}

// Serve starts the HTTP server on the Config's Addr with h, and the admin
// listener (pprof) on its AdminAddr when that is set.
func (p *Process) Serve(h http.Handler) error {
	ln, err := net.Listen("tcp", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", p.cfg.Addr, err)
	}
	hc := p.HTTPConfig()
	lim := api.NewListener(ln, hc)
	p.ln = lim
	p.http = api.NewHTTPServer(h, hc)
	p.g.Go(func() error {
		if err := p.http.Serve(lim); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	p.log.Info("listening", "addr", ln.Addr().String())
	return p.serveAdmin()
}

// HTTPConfig is the HTTP server bounds of the Config (--http-*), zero
// values meaning api's defaults, with the process's logger and registry.
func (p *Process) HTTPConfig() api.HTTPConfig {
	return api.HTTPConfig{
		ReadTimeout: p.cfg.HTTPReadTimeout, WriteTimeout: p.cfg.HTTPWriteTimeout,
		IdleTimeout: p.cfg.HTTPIdleTimeout, MaxConns: p.cfg.HTTPMaxConns,
		Logger: p.log, Registerer: p.reg,
	}
}

// Addr is the HTTP listener's address, nil before Serve.
func (p *Process) Addr() net.Addr {
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Shutdown stops the process in order: stop intake (the HTTP listener),
// then each phase's stops (enricher, router, pusher, sockets with 1012,
// cluster), closes the admin listener, waits for every goroutine, then
// closes clients and stores. It is idempotent; later calls return the
// first result. ctx bounds the HTTP drain and the sockets' close.
func (p *Process) Shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() {
		var errs []error
		httpDone := make(chan error, 1)
		if p.http != nil {
			go func() { httpDone <- p.http.Shutdown(ctx) }() // closes the listener at once
		} else {
			httpDone <- nil
		}
		p.mu.Lock()
		stops := p.stops
		p.mu.Unlock()
		for _, phase := range stops {
			for _, stop := range phase {
				stop(ctx)
			}
		}
		if err := <-httpDone; err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		p.closeAdmin()
		p.cancel()
		if err := p.g.Wait(); err != nil {
			errs = append(errs, err)
		}
		p.mu.Lock()
		closers := p.closers
		p.mu.Unlock()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		p.shutErr = errors.Join(errs...)
	})
	return p.shutErr
}

// migrateTimeout bounds each request of `herald migrate`: schema changes
// wait for agreement.
const migrateTimeout = time.Minute
