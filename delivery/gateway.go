package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/redisguard"
	"github.com/heraldhq/herald/store"
)

// TokenVerifier authenticates a user token; *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(token string) (userID string, err error)
}

// ExpiringVerifier is a TokenVerifier that also reports until when the
// token is valid; *auth.Verifier implements it. A connection authenticated
// by one is closed with 4001 once its token has expired (checked at each
// ping, so within PingInterval). Clients reconnect with a fresh token and
// after=<last seq>.
type ExpiringVerifier interface {
	VerifyExpiry(token string) (userID string, validUntil time.Time, err error)
}

// UnreadPublisher tells every live connection of a user, wherever it is
// connected, the user's new unread count. The Gateway implements it for its
// own connections; a multi-gateway deployment passes one that fans out
// across gateways (and calls each gateway's PublishUnread).
type UnreadPublisher interface {
	PublishUnread(ctx context.Context, userID string, unread int64)
}

// Config configures a Gateway. Zero values mean the documented default.
type Config struct {
	// Store is the durable inbox: replay, gap fill, read marks. Required; a
	// store.Store satisfies it.
	Store store.Inbox
	// Verifier authenticates the token of the upgrade request. Required;
	// *auth.Verifier satisfies it. If it also implements ExpiringVerifier,
	// connections end (4001) when their token expires.
	Verifier TokenVerifier
	// Unread receives the unread count after a client's read frame; nil
	// means this gateway's own PublishUnread (local connections only).
	Unread UnreadPublisher
	// Presence, when set, is told when a user's first connection on this
	// gateway registers and when their last one goes away (see
	// PresenceHook); nil means nobody is told (a single gateway).
	Presence PresenceHook
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the gateway's collectors; nil means
	// metrics.Registry. Collectors already registered there by another
	// component are shared, not duplicated.
	Registerer prometheus.Registerer

	// ReplayLimit caps the replay of a connection without ?after= (its
	// unread notifications, oldest first); 0 means 100.
	ReplayLimit int
	// ReplayPageSize is how many notifications one store read of a replay
	// (with ?after=) or of a gap fill returns; 0 means 100.
	ReplayPageSize int
	// MaxMessageBytes is the largest client frame; a larger one closes the
	// connection with 1009. 0 means 4 KiB.
	MaxMessageBytes int64
	// MaxQueueBytes bounds the frames waiting to be written to one
	// connection (and the live notifications buffered during its replay);
	// a connection that would exceed it is closed with 4008. It must exceed
	// the largest frame. 0 means 1 MiB.
	MaxQueueBytes int
	// PingInterval is how often each connection is pinged; 0 means 25 s.
	PingInterval time.Duration
	// PongWait is how long after a ping interval a connection may stay
	// silent: the read deadline is PingInterval+PongWait after the last
	// pong or message. 0 means 10 s.
	PongWait time.Duration
	// WriteTimeout bounds one frame write; a connection whose write times
	// out is dropped. 0 means 10 s.
	WriteTimeout time.Duration
	// StoreTimeout bounds one store call; 0 means 10 s.
	StoreTimeout time.Duration
	// CloseGrace is how long the gateway waits for the client's answer to
	// its close frame before dropping the TCP connection; 0 means 2 s.
	CloseGrace time.Duration
	// AllowedOrigins lists the origins allowed to connect, in the syntax
	// of internal/origin shared with the API's CORS list: exact origins
	// ("https://app.example.com"), bare hosts ("app.example.com", any
	// scheme on its default port) or "*"; hosts compare case-insensitively.
	// Empty means the Origin's host must equal the request's Host
	// (gorilla's default). Requests without an Origin header (non-browser
	// clients) are allowed. An invalid entry makes New fail.
	AllowedOrigins []string
	// MaxConnsPerUser caps one user's connections on this gateway; more
	// are refused with HTTP 429. 0 means 32, negative means no cap.
	MaxConnsPerUser int
	// FrameRate is how many client frames per second (text, binary and
	// ping frames) one user may send, summed over all of the user's
	// connections on this gateway: a token bucket of FrameBurst, shared by
	// those connections and dropped with the last one. The connection whose
	// frame finds the bucket empty is closed with 4029. 0 means 20,
	// negative means no limit.
	FrameRate float64
	// FrameBurst is the bucket's size; 0 means twice FrameRate (at least 1).
	FrameBurst int
	// Shards is the number of hub shards, rounded up to a power of two; 0
	// means 64.
	Shards int
	// PingLoops is the number of goroutines sharing the pinging of all
	// shards; 0 means min(4, Shards).
	PingLoops int
	// ReadBufferSize is each connection's read buffer, held for the
	// connection's life; 0 means 512 bytes (frames may be larger).
	ReadBufferSize int
	// WriteBufferSize is the size of the pooled write buffers; 0 means 4 KiB.
	WriteBufferSize int
	// Compression lets a client that offers permessage-deflate (RFC 7692,
	// Sec-WebSocket-Extensions) negotiate it, connection by connection:
	// the gateway then sends its frames of 128 bytes or more deflated at
	// flate level 1, without context takeover, and inflates what the client
	// compresses (MaxMessageBytes bounds the inflated frame). It saves a
	// third of a notification's bytes for CPU on every frame (17 to 42 µs
	// more per 656-byte notification on the 2-core dev machine,
	// compression.go). false (the zero value) never negotiates
	// it: every frame is sent as is.
	Compression bool

	// ReadMode is how connections are read: ReadGoroutine, one reader
	// goroutine parked in each connection's socket read; or ReadEpoll,
	// quiet connections parked on one epoll instance and read by a pool of
	// ReadWorkers goroutines while they have input (poll_linux.go; Linux
	// only: elsewhere, or if the epoll instance cannot be made, New logs it
	// and uses ReadGoroutine). "" means ReadGoroutine; another value makes
	// New fail.
	ReadMode ReadMode
	// ReadWorkers (epoll mode) is the number of goroutines reading
	// connections that have input; 0 means 4×GOMAXPROCS, at least 8.
	ReadWorkers int
	// FrameTimeout (epoll mode) bounds each socket read of a worker. A
	// frame that fits the read buffer is never waited for: the connection
	// is parked with the part received. The rest of a frame larger than the
	// buffer is read by gorilla: a client that stalls in it for longer is
	// dropped (reason timeout). 0 means 1 s. In epoll mode ReadBufferSize
	// is at least 257 bytes (gorilla reuses a reader only above 256).
	FrameTimeout time.Duration

	// UpgradeRate is how many WebSocket upgrades per second this gateway
	// admits (a token bucket of UpgradeBurst, checked after the token and
	// before the upgrade); the excess is refused with 503 and Retry-After
	// (see admission.go). 0 means 500, negative means no limit.
	UpgradeRate float64
	// UpgradeBurst is the upgrade bucket's size; 0 means twice UpgradeRate
	// (at least 1).
	UpgradeBurst int
	// UpgradeRetryMax caps the Retry-After of a refused upgrade, drawn
	// uniformly from the time until the next token to that plus the time
	// the bucket needs for the clients refused lately, so that refused
	// clients do not come back together (admission.go). 0 means 10 s.
	UpgradeRetryMax time.Duration
	// MaxReplays bounds the replays reading the store at once; 0 means 256
	// (with the stack's Cassandra, 64 held a 500/s storm to a third of
	// that rate; 256 keeps up, docs/BENCHMARKS.md "Reconnect storm").
	MaxReplays int
	// MaxReplayQueue is how many new connections may wait for a replay
	// slot; while that many wait, upgrades are refused with 503 and
	// Retry-After like the upgrade bucket's excess. 0 means the larger of
	// UpgradeBurst and 4×MaxReplays (1,024 by default), negative means no
	// bound (ReplayWait still ends each wait).
	MaxReplayQueue int
	// ReplayWait is how long a new connection waits for a replay slot
	// before it is closed with 1013; 0 means 10 s.
	ReplayWait time.Duration
	// PositionInterval is how often a quiet connection's position is
	// checked against the inbox's last seq, a safety net beside the checks
	// the cluster asks for (CheckPositions) where a notification forwarded
	// between gateways can be lost (see position.go). 0 means 60 s,
	// negative means never (the asked checks still run).
	PositionInterval time.Duration
	// PositionChecks bounds the position checks (store reads) in flight at
	// once; 0 means 8.
	PositionChecks int

	// MaxWaits caps the long polls (GET /v1/notifications?wait=, see
	// waiters.go) waiting on this gateway at once; more are refused with
	// 503. 0 means DefaultMaxWaits (10,000).
	MaxWaits int
	// MaxWaitsPerUser caps one user's waiting long polls; more are refused
	// with 429. 0 means DefaultMaxWaitsPerUser (32).
	MaxWaitsPerUser int

	// Memberships, when set, is read for the topics of each user whose
	// first connection registers here, so that OnlineMembers can list the
	// connected members of a topic (memberships.go); a store.Store
	// satisfies it. nil means no membership tracking: OnlineMembers
	// returns nil and MembershipChanged does nothing.
	Memberships Memberships
	// MembershipLoaders is how many goroutines load users' topics (each
	// load is a store read, then the catch-up request's); 0 means 16.
	MembershipLoaders int
	// MembershipTimeout bounds one load; 0 means 2 s.
	MembershipTimeout time.Duration
	// CatchUp, with Memberships, is asked after a user's topics are
	// loaded to bring the broadcasts of their large audiences that they
	// have not taken yet into their inbox, from where they arrive on the
	// connection as any notification (pipeline.CatchUpRequester; bounded
	// by MembershipTimeout, best effort). nil: only reads catch up.
	CatchUp CatchUp
	// Preferences, with Memberships, is read with each loaded user's
	// topics, so that live broadcasts (Broadcast, broadcast.go) go only
	// to members whose preferences take them in-app; PreferencesChanged
	// keeps it current. A store.Store satisfies it. nil means no live
	// broadcasts: Broadcast sends nothing.
	Preferences Preferences
}

// CatchUp brings a user's audience feeds into their inbox.
type CatchUp interface {
	Request(ctx context.Context, userID string) error
}

// Errors returned by New.
var (
	// ErrNoStore means Config.Store is nil.
	ErrNoStore = errors.New("delivery: Config.Store is required")
	// ErrNoVerifier means Config.Verifier is nil.
	ErrNoVerifier = errors.New("delivery: Config.Verifier is required")
)

// Gateway is the WebSocket gateway: an http.Handler for GET /v1/ws, and the
// router's local delivery target (Deliver, PublishUnread, HasLocal).
//
// Lock order: Gateway.mu, shard.mu and conn.mu are all leaves — no code
// path holds two of them at once. Code holding shard.mu only copies
// connection pointers; connection state is changed under conn.mu after the
// shard lock is released.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	unread   UnreadPublisher
	upgrader websocket.Upgrader
	hub      hub
	readWait time.Duration // PingInterval + PongWait

	// poll reads the connections in epoll mode; nil in goroutine mode.
	// pollUpgrader is upgrader with ReadBufferSize 0, so that gorilla
	// reads through the reader hijackTap gives it (of pollBuffer bytes).
	poll         *poller
	pollUpgrader websocket.Upgrader
	pollBuffer   int

	origins *origin.Matcher
	m       *gatewayMetrics
	adm     *admission

	// ctx bounds store calls; cancelled by Shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // guards the handshake admission against Shutdown
	// closing is set once, by the first Shutdown; handshakes check it under
	// mu, and hub.add under the shard lock.
	closing atomic.Bool
	// life signals Shutdown to the ping loops (Stopping). The gateway has
	// no Run: its goroutines are counted by wg instead.
	life lifecycle.Lifecycle
	// wg counts every goroutine the gateway owns: ServeHTTP calls, readers,
	// writers, gap fills, ping loops and membership loaders; in epoll mode
	// also every connection registered with the poller (not the poller's
	// own goroutines, stopped after wg has drained).
	wg    sync.WaitGroup
	done  chan struct{} // closed when wg has drained after Shutdown
	conns atomic.Int64

	// waits are the long polls, registered in hub next to the connections.
	waits *Waiters

	// loads feeds the membership loaders (memberships.go); nil without
	// Config.Memberships.
	loads     *loadQueue
	memberLog redisguard.LogLimiter

	// recent: the broadcasts framed lately (broadcast.go).
	recent recentSet
	// asked: the users CheckPositions queued (position.go).
	asked askedChecks
}

// New validates cfg, fills its defaults and starts the ping loops. Stop the
// gateway with Shutdown.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if cfg.Verifier == nil {
		return nil, ErrNoVerifier
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.ReplayLimit, 100)
	def(&cfg.ReplayPageSize, 100)
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 4 << 10
	}
	def(&cfg.MaxQueueBytes, 1<<20)
	defDur(&cfg.PingInterval, 25*time.Second)
	defDur(&cfg.PongWait, 10*time.Second)
	defDur(&cfg.WriteTimeout, 10*time.Second)
	defDur(&cfg.StoreTimeout, 10*time.Second)
	defDur(&cfg.CloseGrace, 2*time.Second)
	switch {
	case cfg.MaxConnsPerUser == 0:
		cfg.MaxConnsPerUser = 32
	case cfg.MaxConnsPerUser < 0:
		cfg.MaxConnsPerUser = math.MaxInt
	}
	switch {
	case cfg.FrameRate == 0:
		cfg.FrameRate = 20
	case cfg.FrameRate < 0:
		cfg.FrameRate = math.Inf(1)
	}
	if cfg.FrameBurst <= 0 {
		cfg.FrameBurst = max(1, int(min(2*cfg.FrameRate, math.MaxInt32)))
	}
	def(&cfg.Shards, 64)
	shards := 1
	for shards < cfg.Shards {
		shards <<= 1
	}
	cfg.Shards = shards
	def(&cfg.PingLoops, min(4, cfg.Shards))
	cfg.PingLoops = min(cfg.PingLoops, cfg.Shards)
	def(&cfg.ReadBufferSize, 512)
	def(&cfg.WriteBufferSize, 4<<10)
	switch {
	case cfg.UpgradeRate == 0:
		cfg.UpgradeRate = 500
	case cfg.UpgradeRate < 0:
		cfg.UpgradeRate = math.Inf(1)
	}
	if cfg.UpgradeBurst <= 0 {
		cfg.UpgradeBurst = max(1, int(min(2*cfg.UpgradeRate, math.MaxInt32)))
	}
	defDur(&cfg.UpgradeRetryMax, 10*time.Second)
	def(&cfg.MaxReplays, 256)
	switch {
	case cfg.MaxReplayQueue == 0:
		// Room for the bucket's burst, which is admitted at once by
		// design; the gate only bites when the store falls behind.
		cfg.MaxReplayQueue = max(cfg.UpgradeBurst, 4*cfg.MaxReplays)
	case cfg.MaxReplayQueue < 0:
		cfg.MaxReplayQueue = 0 // admission: no bound
	}
	defDur(&cfg.ReplayWait, 10*time.Second)
	if cfg.PositionInterval == 0 {
		cfg.PositionInterval = time.Minute
	}
	def(&cfg.PositionChecks, 8)
	def(&cfg.MembershipLoaders, 16)
	defDur(&cfg.MembershipTimeout, 2*time.Second)

	origins, err := origin.Parse(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("delivery: Config.AllowedOrigins: %w", err)
	}
	if cfg.ReadMode, err = ParseReadMode(string(cfg.ReadMode)); err != nil {
		return nil, fmt.Errorf("delivery: Config.ReadMode: %w", err)
	}
	def(&cfg.ReadWorkers, max(8, 4*runtime.GOMAXPROCS(0)))
	defDur(&cfg.FrameTimeout, time.Second)

	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "gateway"),
		unread:   cfg.Unread,
		readWait: cfg.PingInterval + cfg.PongWait,
		origins:  origins,
		m:        newGatewayMetrics(cfg.Registerer),
		adm:      newAdmission(&cfg),
		done:     make(chan struct{}),
	}
	if g.unread == nil {
		g.unread = g
	}
	g.hub.init(cfg.Shards, cfg.Memberships != nil)
	g.waits = newWaiters(&g.hub, &g.closing, WaitersConfig{MaxWaits: cfg.MaxWaits, MaxWaitsPerUser: cfg.MaxWaitsPerUser,
		Presence: cfg.Presence, Logger: g.log, Registerer: cfg.Registerer})
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		// Negotiated only with the clients that offer it (compression.go).
		EnableCompression: cfg.Compression,
		// The origin was checked before the upgrade, with a JSON error.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, reason.Error())
		},
	}
	if cfg.ReadMode == ReadEpoll {
		g.startPoller()
	}
	for i := range cfg.PingLoops {
		g.wg.Add(1)
		go g.pingLoop(i, cfg.PingLoops)
	}
	g.asked.wake = make(chan struct{}, 1)
	g.wg.Add(1)
	go g.positionLoop()
	if cfg.Memberships != nil {
		g.startLoaders()
	}
	return g, nil
}

// writeError writes the contract's {"error":"…"} body.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP handles GET /v1/ws?token=JWT&after=SEQ. Authentication, origin
// and parameter errors, and upgrades beyond the upgrade bucket, are
// answered with a JSON error before the upgrade. After the upgrade it
// waits for a replay slot, replays the inbox on the calling goroutine,
// hands the connection to its reader goroutine and returns.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hs, ok := g.admitStream(w, r, "use GET with a WebSocket upgrade", queryAfter)
	if !ok {
		return
	}
	defer g.wg.Done()
	user, expires, after := hs.user, hs.expires, hs.after
	hasAfter := hs.hasAfter
	ws, tap, err := g.upgrade(w, r)
	if err != nil {
		return // the upgrader answered with an error
	}
	c := &conn{g: g, ws: ws, user: user, expires: expires, replaying: true, writing: true, lastSeq: after, live: hs.live}
	c.out = wsSink{c}
	if tap != nil && tap.br != nil {
		g.poll.prepare(c, tap.br)
	}
	first, load, err := g.hub.add(c, &g.closing, g.cfg.MaxConnsPerUser, g.newFrameLimiter)
	if err != nil {
		// Lost a race with Shutdown or with the user's other handshakes.
		code, reason := CloseRestarting, "server restarting"
		if errors.Is(err, errTooManyConns) {
			code, reason = CloseTooManyConns, "too many connections for this user"
		}
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(code, reason), time.Now().Add(g.cfg.WriteTimeout))
		_ = ws.Close()
		return
	}
	if first && g.cfg.Presence != nil {
		g.cfg.Presence.UserOnline(user)
	}
	if load != nil {
		g.loadTopics(user, load)
	}
	g.conns.Add(1)
	g.m.connections.Inc()
	g.log.Debug("connected", "user", user, "after", r.URL.Query().Get("after"), "remote", r.RemoteAddr)

	g.setCompression(ws)
	ws.SetReadLimit(g.cfg.MaxMessageBytes)
	c.setReadDeadline(g.readWait)
	ws.SetPongHandler(func(string) error { c.extendReadDeadline(); return nil })
	ws.SetPingHandler(c.onPing)
	// A fresh goroutine starts with a small stack; this one has grown
	// through net/http and will exit after the replay.
	// The connection's store calls (replay, read marks) are bounded by the
	// gateway's context, which Shutdown cancels, and StoreTimeout, not by
	// r.Context(): that ends when ServeHTTP returns, while the reader lives on.
	g.wg.Add(1)
	if c.pc != nil {
		g.poll.arm(c.pc) // the registration holds the count
	} else {
		go c.readLoop() //nolint:contextcheck // gateway-owned, see above
	}
	c.replay(after, hasAfter) //nolint:contextcheck // gateway-owned, see above
}

// verify authenticates token; expires is the token's end in Unix
// nanoseconds, 0 if the verifier does not tell.
func (g *Gateway) verify(token string) (user string, expires int64, err error) {
	if ev, ok := g.cfg.Verifier.(ExpiringVerifier); ok {
		user, until, err := ev.VerifyExpiry(token)
		if err != nil || until.IsZero() {
			return user, 0, err
		}
		return user, until.UnixNano(), nil
	}
	user, err = g.cfg.Verifier.Verify(token)
	return user, 0, err
}

// originAllowed is the WebSocket origin rule of internal/origin: the
// configured list, or the request's own host when none is configured.
func (g *Gateway) originAllowed(r *http.Request) bool {
	return g.origins.AllowedFor(r.Header.Get("Origin"), r.Host)
}

// Deliver queues n to every connection of userID on this gateway, wakes
// the user's long polls waiting for it, and reports whether the user has
// at least one of either (online). It never blocks on
// the network: a connection whose queue is full is closed with 4008
// instead. Notifications older than what a connection already sent are
// skipped; one that reveals a gap is sent after the gap is filled from the
// store by a background goroutine. ctx is not used for I/O. The error is
// non-nil only if n cannot be encoded.
func (g *Gateway) Deliver(ctx context.Context, userID string, n herald.Notification) (online bool, err error) {
	online = g.hub.wake(userID, n.Seq) > 0
	var arr [8]*conn
	cs := g.hub.appendConns(userID, arr[:0])
	if len(cs) == 0 {
		return online, nil
	}
	frame, err := encodeNotification(&n)
	if err != nil {
		return false, fmt.Errorf("delivery: encode notification %d of %s: %w", n.Seq, userID, err)
	}
	queued := 0
	for _, c := range cs {
		alive, q := c.offer(n.Seq, n.Prev, n.ID, frame)
		online = online || alive
		if q {
			queued++
		}
	}
	clear(cs)
	if queued > 0 {
		g.m.live.Add(float64(queued))
		if !n.CreatedAt.IsZero() {
			g.m.latency.Observe(time.Since(n.CreatedAt).Seconds())
		}
	}
	return online, nil
}

// PublishUnread queues {"type":"unread","count":unread} to every connection
// of userID on this gateway. It never blocks on the network.
func (g *Gateway) PublishUnread(ctx context.Context, userID string, unread int64) {
	var arr [8]*conn
	cs := g.hub.appendConns(userID, arr[:0])
	if len(cs) == 0 {
		return
	}
	frame := encodeUnread(unread)
	for _, c := range cs {
		c.send(frame)
	}
	clear(cs)
}

// HasLocal reports whether userID has an open connection on this gateway.
func (g *Gateway) HasLocal(userID string) bool {
	return g.hub.hasOpen(userID)
}

// Wait is the long poll of GET /v1/notifications?wait= on this gateway
// (Waiters.Wait): woken by Deliver, answered at once by Shutdown.
func (g *Gateway) Wait(ctx context.Context, userID string, after uint64, ready func() bool) error {
	return g.waits.Wait(ctx, userID, after, ready)
}

// ConnCount is the number of connections (WebSocket and SSE) registered on
// this gateway, including ones being closed.
func (g *Gateway) ConnCount() int {
	return int(g.conns.Load())
}

// Shutdown stops accepting upgrades, closes every connection with 1012
// "server restarting" (an SSE stream gets the close event), answers every
// waiting long poll, and waits for all of the gateway's goroutines. When ctx
// ends first the remaining sockets are dropped without the close handshake,
// and ctx's error is returned once the goroutines have exited. It is
// idempotent and safe to call concurrently: every call waits for the same
// drain, each bounded by its own ctx.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	first := !g.closing.Swap(true)
	g.mu.Unlock()
	if first {
		g.life.Stop() // the ping loops return
		g.hub.each(func(c *conn) { c.close(CloseRestarting, "server restarting", "shutdown") })
		g.hub.wakeAll() // long polls answer now
		// Every connection is closing: abort replays and read marks
		// waiting on the store so their close frames go out now.
		g.cancel()
		go func() {
			g.wg.Wait()
			if g.poll != nil {
				g.poll.stop() // no connection is left to read
			}
			close(g.done)
		}()
	}
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
	}
	// Out of patience: drop the sockets, which ends every reader and writer
	// promptly.
	g.hub.each(func(c *conn) { c.out.drop() })
	<-g.done
	return ctx.Err()
}

// newFrameLimiter is a user's client-frame bucket (Config.FrameRate).
func (g *Gateway) newFrameLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(g.cfg.FrameRate), g.cfg.FrameBurst)
}

// storeCtx bounds one store call.
func (g *Gateway) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(g.ctx, g.cfg.StoreTimeout)
}
