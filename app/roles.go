package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/delivery/cluster"
	"github.com/heraldhq/herald/migrations"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store/cassandra"
	"github.com/heraldhq/herald/topics"
)

var (
	_ api.Waiter = (*delivery.Gateway)(nil)
	_ api.Waiter = (*delivery.Waiters)(nil)
)

// groupName derives a consumer group from the topic prefix, so that two
// deployments sharing a Kafka cluster (or two test runs) never share a
// group: "herald." gives "herald.enricher" and "herald.gateway".
func (p *Process) groupName(role string) string { return p.names.Prefix() + role }

// consumerOptions are the Kafka options of the enricher, the router and
// the pusher: the process's set plus the group session timeout and its
// heartbeat (heartbeatInterval). It also opens the shared client, whose
// Ping is the process's kafka readiness check.
func (p *Process) consumerOptions() ([]kgo.Opt, error) {
	if _, err := p.Kafka(); err != nil {
		return nil, err
	}
	var extra []kgo.Opt
	if p.cfg.SessionTimeout > 0 {
		extra = append(extra, kgo.SessionTimeout(p.cfg.SessionTimeout), kgo.HeartbeatInterval(heartbeatInterval(p.cfg.SessionTimeout)))
	}
	return p.KafkaOptions(extra...)
}

// AddEnricher runs the transactional enricher (supervised: rebuilt after
// a fatal error) until Shutdown, which stops it first. Its readiness
// check, "enricher", passes once it holds its assignment.
func (p *Process) AddEnricher(ctx context.Context) error {
	prefs, err := p.Prefs(ctx)
	if err != nil {
		return err
	}
	opts, err := p.consumerOptions()
	if err != nil {
		return err
	}
	log := p.log.With("role", "enricher")
	live, err := p.livePath(log)
	if err != nil {
		return err
	}
	if err := p.initPolicy(); err != nil {
		return err
	}
	p.superviseConsumer(phaseEnricher, "enricher", func() (consumer, error) {
		return pipeline.NewEnricher(pipeline.EnricherConfig{
			ClientOptions: opts, Topics: p.names, Store: prefs, Logger: log, Registerer: p.reg,
			Group: p.groupName("enricher"), TransactionalID: p.cfg.TransactionalID,
			InstanceID: p.instanceID(p.cfg.TransactionalID), Live: live,
			Policy: p.Policy,
		})
	})
	// The fan-out stage runs beside the enricher, in its own group and
	// transactions (pipeline/fanout.go); it stops with it.
	fanoutID := p.cfg.TransactionalID + "-fanout"
	flog := p.log.With("role", "fanout")
	online, err := p.onlineMembers(flog)
	if err != nil {
		return err
	}
	p.superviseConsumer(phaseEnricher, "fanout", func() (consumer, error) {
		return pipeline.NewFanout(pipeline.FanoutConfig{
			ClientOptions: opts, Topics: p.names, Store: prefs, Logger: flog, Registerer: p.reg,
			Group: p.groupName("fanout"), TransactionalID: fanoutID,
			InstanceID: p.instanceID(fanoutID), Rate: p.cfg.FanoutRate,
			Threshold: int64(p.cfg.FanoutThreshold), Online: online, Devices: prefs,
			Broadcasts: online, Policy: p.Policy, LiveHold: liveHold(p.cfg.FanoutLiveHold),
		})
	})
	return nil
}

// fanoutLive is the fan-out's way to a large audience's connected
// members: who they are, and their live broadcasts.
type fanoutLive interface {
	pipeline.OnlineMembers
	pipeline.LiveBroadcaster
}

// onlineMembers is where the fan-out finds a large audience's connected
// members and sends them live broadcasts: a publish-only Cluster on the
// process's Redis (the gateways' online:<topic> sets, the broadcasts
// channel), or this process's own gateway without Redis (herald dev:
// AddGateway first), or none.
func (p *Process) onlineMembers(log *slog.Logger) (fanoutLive, error) {
	rc, err := p.Redis()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rc == nil {
		if p.localGateway == nil {
			return nil, nil
		}
		return p.localGateway, nil
	}
	id := "fanout:" + p.cfg.TransactionalID
	if cluster.ValidGatewayID(id) != nil {
		id = "fanout"
	}
	cl, err := cluster.New(cluster.Config{Redis: rc, GatewayID: id, Logger: log, Registerer: p.reg})
	if err != nil {
		return nil, err
	}
	p.onStop(phaseCluster, func(context.Context) { _ = cl.Close() })
	return cl, nil
}

// catchUp is a requester of feed catch-ups (pipeline.CatchUpRequester) on
// the process's producer, for trigger (read: the API, connect: gateways).
func (p *Process) catchUp(ctx context.Context, trigger string) (*pipeline.CatchUpRequester, error) {
	st, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := p.Kafka()
	if err != nil {
		return nil, err
	}
	return pipeline.NewCatchUpRequester(pipeline.CatchUpConfig{
		Producer: cl, Topics: p.names, Store: st, Trigger: trigger,
		Logger: p.log.With("component", "catch-up", "trigger", trigger), Registerer: p.reg,
	})
}

// livePath is the enricher's direct path to the live gateways
// (pipeline.LivePublisher, --live-direct): a publish-only Cluster on the
// process's Redis, or this process's own gateway without Redis (herald
// dev: AddGateway first), or none.
func (p *Process) livePath(log *slog.Logger) (pipeline.LivePublisher, error) {
	if !p.cfg.LiveDirect {
		return nil, nil
	}
	rc, err := p.Redis()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rc == nil {
		return p.localLive, nil
	}
	// Its id only names it in logs: it holds no presence and subscribes to
	// nothing, and no gateway has it, so routes skip no gateway.
	id := "enricher:" + p.cfg.TransactionalID
	if cluster.ValidGatewayID(id) != nil {
		id = "enricher"
	}
	pub, err := cluster.New(cluster.Config{Redis: rc, GatewayID: id, Logger: log, Registerer: p.reg})
	if err != nil {
		return nil, err
	}
	p.onStop(phaseCluster, func(context.Context) { _ = pub.Close() })
	return pub, nil
}

// AddGateway builds the WebSocket gateway and runs the router that feeds
// it from herald.deliveries. With Redis, a Cluster registers presence,
// forwards to the gateways holding a user's sockets and fans unread
// counts out; without it, the gateway itself is the router's Deliverer.
// Serve the result at /v1/ws. The router's readiness check, "router",
// passes once it holds its assignment of herald.deliveries.
func (p *Process) AddGateway(ctx context.Context) (*delivery.Gateway, error) {
	st, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	v, err := p.Verifier()
	if err != nil {
		return nil, err
	}
	rc, err := p.Redis()
	if err != nil {
		return nil, err
	}
	opts, err := p.consumerOptions()
	if err != nil {
		return nil, err
	}
	log := p.log.With("role", "gateway", "gateway", p.cfg.GatewayID)
	p.startFileLimit(log)
	gcfg := delivery.Config{
		Store: st, Verifier: v, Logger: log, Registerer: p.reg,
		ReplayLimit: p.cfg.ReplayLimit, AllowedOrigins: p.cfg.Origins, FrameRate: p.cfg.WSFrameRate,
		UpgradeRate: p.cfg.WSUpgradeRate, UpgradeBurst: p.cfg.WSUpgradeBurst,
		MaxReplays: p.cfg.WSMaxReplays, ReplayWait: p.cfg.WSReplayWait, PositionInterval: p.cfg.WSPositionInterval,
		ReadMode:    delivery.ReadMode(p.cfg.WSReadMode),
		Compression: p.cfg.WSCompression,
	}
	if gcfg.PositionInterval == 0 {
		gcfg.PositionInterval = -1 // --ws-position-interval 0: never
	}
	// Connected users' topics are tracked for the large-audience path, and
	// a user's first connection catches up their feeds (fanout_feed.go).
	gcfg.Memberships = st
	// Live broadcasts check the user's preferences, read with the topics
	// from the store itself: one read, the current value (the cache's
	// miss path costs three Redis calls more, in a reconnect storm).
	gcfg.Preferences = st
	if gcfg.CatchUp, err = p.catchUp(ctx, pipeline.TriggerConnect); err != nil {
		return nil, err
	}
	var deliverer pipeline.Deliverer
	var cl *cluster.Cluster
	if rc != nil {
		if cl, err = cluster.New(cluster.Config{Redis: rc, GatewayID: p.cfg.GatewayID, Logger: log, Registerer: p.reg}); err != nil {
			return nil, err
		}
		gcfg.Presence, gcfg.Unread = cl, cl
		deliverer = cl
	}
	gw, err := delivery.New(gcfg) //nolint:contextcheck // the gateway's goroutines live until its Shutdown, with their own store timeouts
	if err != nil {
		if cl != nil {
			_ = cl.Close()
		}
		return nil, err
	}
	if cl == nil {
		deliverer = gw
		p.mu.Lock()
		p.localLive = pipeline.DelivererLive{Deliverer: gw}
		p.localGateway = gw
		p.mu.Unlock()
	} else {
		if err := cl.Attach(gw); err != nil {
			_ = cl.Close()
			return nil, err
		}
		p.runCluster(cl)
		p.mu.Lock()
		p.onStop(phaseCluster, func(context.Context) { _ = cl.Close() })
		p.mu.Unlock()
	}
	p.superviseConsumer(phaseRouter, "router", func() (consumer, error) {
		return pipeline.NewRouter(pipeline.RouterConfig{
			ClientOptions: opts, Topics: p.names, Deliverer: deliverer, Logger: log, Registerer: p.reg,
			Group: p.groupName("gateway"), StartAtEnd: p.cfg.RouterFromEnd,
			InstanceID: p.instanceID(p.cfg.GatewayID),
		})
	})
	p.mu.Lock()
	p.onStop(phaseSockets, func(ctx context.Context) {
		if err := gw.Shutdown(ctx); err != nil {
			log.Warn("gateway shutdown", "err", err)
		}
	})
	p.mu.Unlock()
	return gw, nil
}

// APIOptions are what AddAPI takes from the process's other roles.
type APIOptions struct {
	// WebSocket, when set, is mounted at /v1/ws (herald dev's gateway).
	WebSocket http.Handler
	// SSE, when set, is mounted at /v1/sse (herald dev's gateway).
	SSE http.Handler
	// Waiter holds long polls (GET /v1/notifications?wait=): herald dev's
	// gateway. Nil means, with Redis, a delivery.Waiters attached to the
	// API's Cluster (routers forward the notifications of users with a
	// waiting request to this process), and without Redis none: wait is
	// answered at once.
	Waiter api.Waiter
	// Unread is told of read-state changes; nil means a publish-only
	// Cluster with Redis (every gateway hears), nobody without.
	Unread api.UnreadPublisher
	// Memberships is told of subscription changes (herald dev's gateway);
	// nil means, with Redis, the publish-only Cluster of Unread (routed to
	// the user's gateways), nobody without.
	Memberships api.MembershipNotifier
	// APIKeys are accepted besides the Config's (herald dev's own key).
	APIKeys []string
	// DefaultAppID is the app_id of a device registration that omits it;
	// "" means the push section's default_app (none: app_id is required).
	DefaultAppID string
	// DevPushes, when set, serves GET /v1/dev/pushes (herald dev's fakes).
	DevPushes http.Handler
	// DevJWTSecret and DevAPIKey, when set, serve POST /v1/dev/token and
	// POST /v1/dev/events (herald dev's secrets; api.Config).
	DevJWTSecret []byte
	DevAPIKey    string
	// Root, when set, serves / and the other paths outside /v1/ that no
	// route matches (herald dev's demo page; api.Config.Root).
	Root http.Handler
}

// AddAPI builds the HTTP API: event intake to Kafka and the user
// endpoints on the store (through the preference cache, so that writes
// invalidate what the enrichers cached). Its /readyz checks every
// dependency the process opened so far: build it last.
func (p *Process) AddAPI(ctx context.Context, o APIOptions) (*api.Server, error) {
	st, err := p.Prefs(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := p.Kafka()
	if err != nil {
		return nil, err
	}
	v, err := p.Verifier()
	if err != nil {
		return nil, err
	}
	keys, err := auth.NewAPIKeys(append(append([]string(nil), o.APIKeys...), p.cfg.APIKeys...)...)
	if err != nil {
		return nil, fmt.Errorf("--api-keys: %w", err)
	}
	log := p.log.With("role", "api")
	catchUp, err := p.catchUp(ctx, pipeline.TriggerRead)
	if err != nil {
		return nil, err
	}
	unread, members := o.Unread, o.Memberships
	if unread == nil {
		rc, err := p.Redis()
		if err != nil {
			return nil, err
		}
		if rc != nil {
			pub, err := cluster.New(cluster.Config{Redis: rc, GatewayID: p.cfg.GatewayID + "-api", Logger: log, Registerer: p.reg})
			if err != nil {
				return nil, err
			}
			unread = pub
			if members == nil {
				members = pub
			}
			p.mu.Lock()
			p.onStop(phaseCluster, func(context.Context) { _ = pub.Close() })
			p.mu.Unlock()
			if o.Waiter == nil {
				if o.Waiter, err = p.apiWaiters(pub, log); err != nil {
					return nil, err
				}
			}
		}
	}
	srv, err := api.New(api.Config{
		Store: st, Events: pipeline.NewEventWriter(cl, p.names), Users: v, Keys: keys,
		Unread: unread, WebSocket: o.WebSocket, SSE: o.SSE, Waiter: o.Waiter, Logger: log, Registerer: p.reg, CORSOrigins: p.cfg.Origins,
		EventsPerKey: limit(p.cfg.RateKey), RequestsPerUser: limit(p.cfg.RateUser),
		ProduceTimeout: p.cfg.ProduceTimeout, MaxInflightBytes: int64(p.cfg.IntakeMaxInflight),
		DefaultAppID: cmp.Or(o.DefaultAppID, p.cfg.PushSettings().DefaultApp), DevPushes: o.DevPushes,
		DevJWTSecret: o.DevJWTSecret, DevAPIKey: o.DevAPIKey, Root: o.Root,
		CatchUp: catchUp, Memberships: members,
		Ready: p.Checks(),
	})
	if err != nil {
		return nil, err
	}
	p.runReadiness(srv)
	return srv, nil
}

// runCluster runs cl (presence and its subscription) on the process's
// group until Shutdown cancels the roles' context.
func (p *Process) runCluster(cl *cluster.Cluster) {
	p.g.Go(func() error {
		if err := cl.Run(p.ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cluster.ErrClosed) {
			return fmt.Errorf("cluster: %w", err)
		}
		return nil
	})
}

// apiWaiters are the long polls of an API process: a delivery.Waiters
// attached to its Cluster, which then registers the users with a waiting
// request in the presence registry and receives their notifications from
// the routers; run until Shutdown, which answers the waiting requests.
func (p *Process) apiWaiters(cl *cluster.Cluster, log *slog.Logger) (api.Waiter, error) {
	w := delivery.NewWaiters(delivery.WaitersConfig{Presence: cl, Logger: log, Registerer: p.reg})
	if err := cl.Attach(w); err != nil {
		return nil, err
	}
	p.runCluster(cl)
	p.mu.Lock()
	p.onStop(phaseSockets, func(context.Context) { w.Shutdown() })
	p.mu.Unlock()
	return w, nil
}

// gatewayInbox serves GET /v1/notifications on the gateway role, with
// long polls held by gw: the API's own handler (same auth, limits and
// answers) on the store.
func (p *Process) gatewayInbox(ctx context.Context, gw *delivery.Gateway) (http.Handler, error) {
	st, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	v, err := p.Verifier()
	if err != nil {
		return nil, err
	}
	catchUp, err := p.catchUp(ctx, pipeline.TriggerRead)
	if err != nil {
		return nil, err
	}
	return api.New(api.Config{Store: st, Users: v, Waiter: gw, Logger: p.log.With("role", "gateway"), Registerer: p.reg,
		CORSOrigins: p.cfg.Origins, RequestsPerUser: limit(p.cfg.RateUser), CatchUp: catchUp})
}

// Ops is the handler of a role without the user API: health, readiness
// of every dependency opened so far, metrics, and the extra routes.
func (p *Process) Ops(extra map[string]http.Handler) http.Handler {
	srv := api.Ops(api.OpsConfig{Ready: p.Checks(), Extra: extra, Registerer: p.reg, Logger: p.log})
	p.runReadiness(srv)
	return srv
}

// runReadiness runs srv's background readiness checks on the process's
// group until Shutdown cancels the roles' context (Shutdown waits for
// them with every other goroutine).
func (p *Process) runReadiness(srv *api.Server) {
	p.g.Go(func() error { return srv.Run(p.ctx) })
}

func limit(perSecond float64) api.Limit {
	r, b := config.Limit(perSecond)
	return api.Limit{Rate: r, Burst: b}
}

// RunAPI serves the HTTP API until ctx ends.
func RunAPI(ctx context.Context, cfg *config.Config) error {
	return run(ctx, cfg, func(p *Process) (http.Handler, error) {
		return p.AddAPI(ctx, APIOptions{})
	})
}

// RunEnricher runs the enricher, serving health and metrics, until ctx
// ends.
func RunEnricher(ctx context.Context, cfg *config.Config) error {
	return run(ctx, cfg, func(p *Process) (http.Handler, error) {
		if err := p.AddEnricher(ctx); err != nil {
			return nil, err
		}
		return p.Ops(nil), nil
	})
}

// RunGateway serves WebSockets, SSE streams and long polls
// (GET /v1/notifications) and consumes herald.deliveries until ctx ends.
func RunGateway(ctx context.Context, cfg *config.Config) error {
	return run(ctx, cfg, func(p *Process) (http.Handler, error) {
		gw, err := p.AddGateway(ctx)
		if err != nil {
			return nil, err
		}
		inbox, err := p.gatewayInbox(ctx, gw)
		if err != nil {
			return nil, err
		}
		return p.Ops(map[string]http.Handler{"/v1/ws": gw, "/v1/sse": gw.SSE(), "/v1/notifications": inbox}), nil
	})
}

// run builds one production role on a Process, serves it, waits for ctx
// and shuts down in order. A build error also shuts down what was built.
func run(ctx context.Context, cfg *config.Config, build func(p *Process) (http.Handler, error)) error {
	p := NewProcess(ctx, cfg, Deps{})
	log := p.log.With("role", cfg.Role)
	log.Info("starting", "config", cfg)
	h, err := build(p)
	if err == nil {
		err = p.Serve(h)
	}
	if err != nil {
		_ = p.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	// ctx is done: shut down on its values, without its cancellation.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return p.Shutdown(sctx)
}

// Migrate creates the Cassandra keyspace if needed and applies the schema
// migrations; safe to run twice and concurrently.
func Migrate(ctx context.Context, cfg *config.Config) error {
	repl, err := migrations.ParseReplication(cfg.Cassandra.Replication)
	if err != nil {
		return fmt.Errorf("--replication-cql: %w", err)
	}
	cc, err := cassandraConfig(cfg, cfg.Logger())
	if err != nil {
		return err
	}
	cc.Replication = repl
	// herald dev never migrates a Cassandra: this is a real cluster, and
	// below 3 replicas it cannot keep what Herald promises. Only a warning:
	// one-node development and test clusters run with 1.
	migrations.WarnUndurable(ctx, cfg.Logger(), cfg.Cassandra.Keyspace, repl)
	// Schema changes wait for agreement and can be slow on a busy node.
	cc.Timeout = migrateTimeout
	st, err := cassandra.OpenAndMigrate(ctx, cc)
	if err != nil {
		return dependency("cassandra", err)
	}
	return st.Close()
}

// Topics creates or updates Herald's topics on the configured Kafka and
// returns what it changed.
func Topics(ctx context.Context, cfg *config.Config) ([]topics.Change, error) {
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(pipeline.ClientOptions(nil, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	changes, err := topics.Ensure(ctx, kadm.NewClient(cl), topics.Specs(topics.WithPrefix(cfg.TopicPrefix)), int16(cfg.Replication))
	return changes, dependency("kafka", err)
}

// liveHold is the fan-out's LiveHold for --fanout-live-hold, where 0
// means no wait.
func liveHold(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
