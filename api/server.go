package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/store"
)

// UserVerifier authenticates a user token and returns the user id.
type UserVerifier interface {
	Verify(token string) (userID string, err error)
}

// KeyChecker authenticates an upstream service's API key.
type KeyChecker interface {
	Valid(key string) bool
}

// UnreadPublisher tells the user's live connections their new unread count.
type UnreadPublisher interface {
	PublishUnread(ctx context.Context, userID string, unread int64)
}

// Config configures a Server.
type Config struct {
	// Store holds inboxes, preferences and devices. Required.
	Store store.Store
	// Events receives accepted events (a pipeline.EventWriter in every
	// role); nil disables POST /v1/events (503).
	Events EventSink
	// Users verifies user JWTs. Required.
	Users UserVerifier
	// Keys verifies upstream API keys; nil refuses every key (401).
	Keys KeyChecker
	// Unread is told of read-state changes; nil means nobody is told.
	Unread UnreadPublisher
	// CatchUp, when set, is asked by GET /v1/notifications to bring the
	// user's audience feeds into their inbox (feeds.go); nil means large
	// audiences' broadcasts reach a member only when they connect.
	CatchUp CatchUp
	// Memberships, when set, is told of every subscription change; nil
	// means gateways learn a user's topics only when the user connects.
	Memberships MembershipNotifier
	// WebSocket, when set, is mounted at /v1/ws.
	WebSocket http.Handler
	// SSE, when set, is mounted at /v1/sse (the gateway's Server-Sent
	// Events, delivery.Gateway.SSE).
	SSE http.Handler
	// Waiter, when set, holds GET /v1/notifications?wait=SECONDS until a
	// notification after ?after= arrives (longpoll.go). Nil means ?wait=
	// is validated but the request is answered at once, as with wait=0.
	Waiter Waiter
	// WaitWriteTimeout bounds writing a long poll's answer once its wait
	// is over (the server's WriteTimeout counts from the request, which a
	// wait may outlast); 0 means DefaultWaitWriteTimeout (30 s).
	WaitWriteTimeout time.Duration
	// DevPushes, when set, serves GET /v1/dev/pushes: what herald dev's
	// fake push providers received. Nil (every production role) means the
	// route does not exist (404).
	DevPushes http.Handler
	// DevJWTSecret, when set (herald dev's secret, at least
	// auth.MinSecretLen bytes), serves POST /v1/dev/token: user tokens
	// signed with it, valid for DevTokenTTL. Nil means the route does not
	// exist (404).
	DevJWTSecret []byte
	// DevAPIKey, when set (herald dev's key), serves POST /v1/dev/events:
	// POST /v1/events as this API key, for the demo page. "" means the
	// route does not exist (404).
	DevAPIKey string
	// Root, when set, serves the requests no route matches whose path is
	// not under /v1/ (herald dev's demo page at /); it answers the paths
	// it does not know itself. Nil means the JSON 404 for them all.
	Root http.Handler
	// Ready are the dependency checks of /readyz, run in the background by
	// Run (readiness.go); none means always ready.
	Ready []ReadyCheck
	// ReadyInterval is how often each check runs unless it sets its own;
	// 0 means 2s.
	ReadyInterval time.Duration
	// ReadyTimeout bounds each call of a check unless it sets its own; 0
	// means 1s.
	ReadyTimeout time.Duration
	// MaxBatch is the most events one POST may carry; 0 means 500.
	MaxBatch int
	// MaxListLimit caps ?limit= of GET /v1/notifications; 0 means 500.
	MaxListLimit int
	// DefaultListLimit is used when ?limit= is absent; 0 means 50.
	DefaultListLimit int
	// EventsPerKey limits POST /v1/events per API key, counted in events;
	// the zero value means no limit. Refused requests get 429 + Retry-After.
	// The same bucket charges POST /v1/audiences/{topic}/members one token
	// per user id and GET /v1/audiences/{topic} one per call.
	EventsPerKey Limit
	// ProduceTimeout bounds how long POST /v1/events waits for Kafka to
	// acknowledge a request's events; past it the answer is 503 with
	// Retry-After. 0 means 5s.
	ProduceTimeout time.Duration
	// MembersTimeout bounds the applying of one POST
	// /v1/audiences/{topic}/members, under the server's write timeout: a
	// slow store answers 503 with Retry-After, naming what was applied,
	// rather than a connection closed without an answer. 0 means 20s.
	MembersTimeout time.Duration
	// MaxInflightBytes bounds the bytes of POST /v1/events bodies being
	// read, validated or produced at once; a request that would go past it
	// gets 503 with Retry-After. 0 means 64 MiB.
	MaxInflightBytes int64
	// RequestsPerUser limits the user endpoints per user id; the zero
	// value means no limit.
	RequestsPerUser Limit
	// MaxLimitedUsers bounds the per-user buckets kept (idle ones age
	// out); 0 means 100,000.
	MaxLimitedUsers int
	// CORSOrigins are the origins allowed to call the API from a browser,
	// in the syntax of internal/origin shared with the gateway's
	// AllowedOrigins: exact origins ("https://app.example.com"), bare hosts
	// ("app.example.com", any scheme on its default port) or "*"; hosts
	// compare case-insensitively. Empty means no CORS headers (same origin
	// only). An invalid entry makes New fail.
	CORSOrigins []string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the API's collectors; nil means
	// metrics.Registry. Collectors already registered there by another
	// component are shared, not duplicated.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves; nil means Registerer when it is a
	// prometheus.Gatherer (a *prometheus.Registry), else metrics.Registry.
	Gatherer prometheus.Gatherer
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// DefaultAppID is the app_id of a POST /v1/devices that omits it (the
	// push section's default_app; "dev" in herald dev). "" means app_id
	// is required: a registration without it is a 400.
	DefaultAppID string
}

// Server is the HTTP API; it is an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	handler http.Handler
	log     *slog.Logger
	m       *serverMetrics
	keys    *limiters
	users   *limiters
	intake  *budget
	ready   *readiness
	origins *origin.Matcher
}

// ErrConfig is returned by New for an incomplete Config.
var ErrConfig = errors.New("api: invalid config")

// New validates cfg, fills defaults and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Users == nil {
		return nil, errors.Join(ErrConfig, errors.New("both Store and Users are required"))
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.MaxListLimit <= 0 {
		cfg.MaxListLimit = 500
	}
	if cfg.DefaultListLimit <= 0 {
		cfg.DefaultListLimit = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MembersTimeout <= 0 {
		cfg.MembersTimeout = 20 * time.Second
	}
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = DefaultProduceTimeout
	}
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.MaxLimitedUsers <= 0 {
		cfg.MaxLimitedUsers = 100_000
	}
	if cfg.WaitWriteTimeout <= 0 {
		cfg.WaitWriteTimeout = DefaultWaitWriteTimeout
	}
	origins, err := origin.Parse(cfg.CORSOrigins)
	if err != nil {
		return nil, errors.Join(ErrConfig, fmt.Errorf("CORSOrigins: %w", err))
	}
	if cfg.DevJWTSecret != nil && len(cfg.DevJWTSecret) < auth.MinSecretLen {
		return nil, errors.Join(ErrConfig, fmt.Errorf("DevJWTSecret: %d bytes, need at least %d", len(cfg.DevJWTSecret), auth.MinSecretLen))
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, m: newServerMetrics(cfg.Registerer),
		keys: newLimiters(cfg.EventsPerKey, 1024), users: newLimiters(cfg.RequestsPerUser, cfg.MaxLimitedUsers),
		intake: newBudget(cfg.MaxInflightBytes), origins: origins, ready: newReadiness(cfg.Ready, cfg.ReadyInterval, cfg.ReadyTimeout, cfg.Now, cfg.Logger)}
	s.handler = cors(origins, canonicalPaths(s.mux))
	s.route("/v1/events", map[string]http.HandlerFunc{http.MethodPost: s.postEvents})
	s.route("/v1/notifications", map[string]http.HandlerFunc{http.MethodGet: s.user(s.listNotifications)})
	s.route("/v1/notifications/read", map[string]http.HandlerFunc{http.MethodPost: s.user(s.markRead)})
	s.route("/v1/notifications/unread_count", map[string]http.HandlerFunc{http.MethodGet: s.user(s.unreadCount)})
	s.route("/v1/preferences", map[string]http.HandlerFunc{
		http.MethodGet: s.user(s.getPreferences), http.MethodPut: s.user(s.putPreferences)})
	s.route("/v1/devices", map[string]http.HandlerFunc{http.MethodGet: s.user(s.listDevices), http.MethodPost: s.user(s.postDevice)})
	s.route("/v1/devices/{token}", map[string]http.HandlerFunc{http.MethodDelete: s.user(s.deleteDevice)})
	s.route("/v1/subscriptions", map[string]http.HandlerFunc{http.MethodGet: s.user(s.listSubscriptions)})
	s.route("/v1/subscriptions/{topic}", map[string]http.HandlerFunc{
		http.MethodPut: s.user(s.putSubscription), http.MethodDelete: s.user(s.deleteSubscription)})
	s.route("/v1/audiences/{topic}", map[string]http.HandlerFunc{http.MethodGet: s.service(s.getAudience)})
	s.route("/v1/audiences/{topic}/members", map[string]http.HandlerFunc{http.MethodPost: s.service(s.postMembers)})
	s.route("/healthz", map[string]http.HandlerFunc{http.MethodGet: s.healthz, http.MethodHead: s.healthz})
	s.route("/readyz", map[string]http.HandlerFunc{http.MethodGet: s.readyz, http.MethodHead: s.readyz})
	metricsHandler := promhttp.HandlerFor(gathererFor(cfg.Gatherer, cfg.Registerer), promhttp.HandlerOpts{})
	s.route("/metrics", map[string]http.HandlerFunc{http.MethodGet: metricsHandler.ServeHTTP})
	s.route("/v1/openapi.json", map[string]http.HandlerFunc{http.MethodGet: serveOpenAPI})
	if cfg.WebSocket != nil {
		s.mux.Handle("/v1/ws", cfg.WebSocket)
	}
	if cfg.SSE != nil {
		s.mux.Handle("/v1/sse", cfg.SSE)
	}
	if cfg.DevPushes != nil {
		s.route("/v1/dev/pushes", map[string]http.HandlerFunc{http.MethodGet: cfg.DevPushes.ServeHTTP})
	}
	if cfg.DevJWTSecret != nil {
		s.route("/v1/dev/token", map[string]http.HandlerFunc{http.MethodPost: s.devOnly(s.postDevToken)})
	}
	if cfg.DevAPIKey != "" {
		s.route("/v1/dev/events", map[string]http.HandlerFunc{http.MethodPost: s.devOnly(s.postDevEvents)})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Root != nil && !strings.HasPrefix(r.URL.Path, "/v1/") {
			cfg.Root.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "", "no route for "+r.URL.Path)
	})
	return s, nil
}

// Run runs the server's background work, the readiness checks, until ctx
// ends or Close is called; it returns once they have stopped. Until Run
// starts, /readyz answers 503 (every check pending) unless there are no
// checks; after it returns, the last results go stale within three
// intervals. Run may be called once (lifecycle.ErrRunning,
// lifecycle.ErrClosed otherwise).
func (s *Server) Run(ctx context.Context) error { return s.ready.run(ctx) }

// Close stops Run and waits for it; it is idempotent. The server keeps
// serving requests: closing the listener is the http.Server's job.
func (s *Server) Close() { s.ready.stop() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// route registers path with one handler per method; other methods get a
// JSON 405 with an Allow header (ServeMux's own 405 is plain text).
func (s *Server) route(path string, byMethod map[string]http.HandlerFunc) {
	allow := ""
	for m := range byMethod {
		if allow != "" {
			allow += ", "
		}
		allow += m
	}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h, ok := byMethod[r.Method]
		if !ok {
			rec.Header().Set("Allow", allow)
			writeError(rec, http.StatusMethodNotAllowed, "", r.Method+" is not allowed on "+path+"; allowed: "+allow)
		} else {
			h(rec, r)
		}
		s.m.requests.WithLabelValues(path, strconv.Itoa(rec.code)).Inc()
		s.m.seconds.WithLabelValues(path).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's deadlines
// (long polls) through the recorder.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// unauthorized writes a 401 with WWW-Authenticate (RFC 6750): the
// challenge alone for missing credentials, error="invalid_token" for
// credentials that were sent and refused.
func unauthorized(w http.ResponseWriter, sent bool, msg string) {
	challenge := `Bearer realm="herald"`
	if sent {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, "", msg)
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, errorBody{Error: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// openAPI is the OpenAPI 3.1 description of this API (openapi.json);
// openapi_test.go keeps it in step with the routes above.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// OpsConfig configures Ops. Zero values mean the documented default.
type OpsConfig struct {
	// Ready are the dependency checks of /readyz, run by the Server's Run;
	// none means always ready.
	Ready []ReadyCheck
	// ReadyInterval and ReadyTimeout are those of Config.
	ReadyInterval, ReadyTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Extra are more routes (path → handler), mounted as given.
	Extra map[string]http.Handler
	// Registerer receives the ops routes' herald_http_* series; nil means
	// metrics.Registry.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves; nil means Registerer when it is a
	// prometheus.Gatherer (a *prometheus.Registry), else metrics.Registry.
	Gatherer prometheus.Gatherer
}

// Ops serves only /healthz, /readyz and /metrics, plus cfg.Extra, for
// roles that do not serve the user API (enricher, gateway). Like New's,
// its readiness checks run only while its Run does.
func Ops(cfg OpsConfig) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: Config{Ready: cfg.Ready}, mux: http.NewServeMux(), log: log, m: newServerMetrics(cfg.Registerer),
		ready: newReadiness(cfg.Ready, cfg.ReadyInterval, cfg.ReadyTimeout, time.Now, log)}
	s.handler = canonicalPaths(s.mux)
	s.route("/healthz", map[string]http.HandlerFunc{http.MethodGet: s.healthz, http.MethodHead: s.healthz})
	s.route("/readyz", map[string]http.HandlerFunc{http.MethodGet: s.readyz, http.MethodHead: s.readyz})
	metricsHandler := promhttp.HandlerFor(gathererFor(cfg.Gatherer, cfg.Registerer), promhttp.HandlerOpts{})
	s.route("/metrics", map[string]http.HandlerFunc{http.MethodGet: metricsHandler.ServeHTTP})
	for path, h := range cfg.Extra {
		s.mux.Handle(path, h)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no route for "+r.URL.Path)
	})
	return s
}
