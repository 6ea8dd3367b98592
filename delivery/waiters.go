package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/metrics"
)

// Long polls (GET /v1/notifications?after=SEQ&wait=SECONDS).
//
// A long poll is a waiter: like a connection that wants one wake-up. It is
// registered in the hub under its user, next to the user's connections, so
// that the router's Deliver (or a notification another gateway forwards)
// wakes it without anyone polling the store: the request then reads its
// page from the inbox as a plain GET would. The user counts as present
// while a long poll waits (presence hooks, Present, LocalUsers), so that a
// fleet routes the user's notifications to the process holding it.
//
// The race between "the store has nothing yet" and "registered" is closed
// by the order: register first, then check the store once (Wait's ready),
// then wait. A notification stored before the registration is seen by the
// check; one delivered after it wakes the waiter.
//
// Bounds: MaxWaits long polls per process (503 with Retry-After past it),
// MaxWaitsPerUser per user (429). A waiter holds one small struct and a
// channel; the request's goroutine is net/http's.

// DefaultMaxWaits and DefaultMaxWaitsPerUser are the defaults of
// WaitersConfig (and of the gateway's long polls).
const (
	DefaultMaxWaits        = 10_000
	DefaultMaxWaitsPerUser = 32
)

// waiter is one waiting long poll.
type waiter struct {
	user  string
	after uint64
	once  sync.Once
	woken chan struct{} // closed by fire
}

// fire wakes the waiter; it reports whether this call did.
func (w *waiter) fire() (fired bool) {
	w.once.Do(func() { close(w.woken); fired = true })
	return fired
}

// WaitError is a long poll refused before it waits: Status is the HTTP
// answer (503 past the process's cap, 429 past the user's).
type WaitError struct {
	Status int
	Msg    string
}

func (e *WaitError) Error() string { return e.Msg }

// HTTPStatus is the status the API answers the refused request with.
func (e *WaitError) HTTPStatus() int { return e.Status }

// WaitersConfig configures a standalone Waiters (a process without a
// gateway: the API role). Zero values mean the documented default.
type WaitersConfig struct {
	// MaxWaits caps the long polls waiting at once in this process; more
	// are refused (503, Retry-After). 0 means DefaultMaxWaits.
	MaxWaits int
	// MaxWaitsPerUser caps one user's waiting long polls; more are refused
	// (429). 0 means DefaultMaxWaitsPerUser.
	MaxWaitsPerUser int
	// Presence is told when a user's first long poll registers and their
	// last one ends (a delivery/cluster.Cluster, so that routers forward
	// the user's notifications here); nil means nobody is told. Set it
	// before the first Wait.
	Presence PresenceHook
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives herald_long_polls_waiting and
	// herald_long_polls_refused_total; nil means metrics.Registry.
	Registerer prometheus.Registerer
}

// Waiters is a registry of long polls: it implements the API's Waiter
// (Wait) and delivery/cluster's Local (Deliver wakes; PublishUnread is a
// no-op: a long poll answers notifications only). A Gateway has one built
// in, sharing its hub; NewWaiters makes one for a process without a
// gateway.
type Waiters struct {
	hub      *hub
	closing  *atomic.Bool
	presence PresenceHook
	max      int64
	perUser  int
	n        atomic.Int64
	waiting  prometheus.Gauge
	refused  *prometheus.CounterVec
	log      *slog.Logger

	ownClosing atomic.Bool // closing of a standalone Waiters
}

// NewWaiters builds a standalone registry. Stop it with Shutdown.
func NewWaiters(cfg WaitersConfig) *Waiters {
	w := newWaiters(new(hub), nil, cfg)
	w.hub.init(64, false)
	return w
}

// newWaiters builds the registry over h; closing nil means its own flag.
func newWaiters(h *hub, closing *atomic.Bool, cfg WaitersConfig) *Waiters {
	if cfg.MaxWaits <= 0 {
		cfg.MaxWaits = DefaultMaxWaits
	}
	if cfg.MaxWaitsPerUser <= 0 {
		cfg.MaxWaitsPerUser = DefaultMaxWaitsPerUser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Waiters{
		hub: h, closing: closing, presence: cfg.Presence,
		max: int64(cfg.MaxWaits), perUser: cfg.MaxWaitsPerUser, log: cfg.Logger,
		waiting: metrics.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Name: "long_polls_waiting", Help: "Long polls (GET /v1/notifications?wait=) waiting for a notification in this process.",
		})),
		refused: metrics.Register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "long_polls_refused_total", Help: "Long polls refused before waiting, by reason (too_many: the process's cap, 503; too_many_for_user: the user's cap, 429).",
		}, []string{"reason"})),
	}
	if w.closing == nil {
		w.closing = &w.ownClosing
	}
	return w
}

// SetPresence sets the presence hook of a standalone Waiters when it could
// not be given in its config (the Cluster needs the Waiters first). Call
// it before the first Wait.
func (w *Waiters) SetPresence(p PresenceHook) { w.presence = p }

// Wait registers a long poll of userID for a notification with a seq above
// after, then calls ready, which should check the inbox once (something
// may have arrived before the registration) and report whether the
// request can be answered now. Unless it can, Wait blocks until such a
// notification is delivered here, ctx ends, or Shutdown. It returns nil in
// all those cases (the caller reads its page from the inbox then), and
// without waiting or calling ready once Shutdown has begun. A refused long
// poll returns a *WaitError.
func (w *Waiters) Wait(ctx context.Context, userID string, after uint64, ready func() bool) error {
	if w.closing.Load() {
		return nil
	}
	if w.n.Add(1) > w.max {
		w.n.Add(-1)
		w.refused.WithLabelValues("too_many").Inc()
		return &WaitError{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("more than %d long polls waiting on this server, retry later", w.max)}
	}
	defer w.n.Add(-1)
	wt := &waiter{user: userID, after: after, woken: make(chan struct{})}
	first, err := w.hub.addWaiter(wt, w.closing, w.perUser)
	switch {
	case errors.Is(err, errClosing):
		return nil
	case err != nil:
		w.refused.WithLabelValues("too_many_for_user").Inc()
		return &WaitError{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf("more than %d long polls waiting for this user", w.perUser)}
	}
	if first && w.presence != nil {
		w.presence.UserOnline(userID)
	}
	w.waiting.Inc()
	defer func() {
		w.waiting.Dec()
		if w.hub.removeWaiter(wt) && w.presence != nil {
			w.presence.UserOffline(userID)
		}
	}()
	if ready != nil && ready() {
		return nil
	}
	select {
	case <-wt.woken:
	case <-ctx.Done():
	}
	return nil
}

// Deliver wakes userID's long polls waiting for a seq below n's and
// reports whether it woke one. It never blocks.
func (w *Waiters) Deliver(_ context.Context, userID string, n herald.Notification) (online bool, err error) {
	return w.hub.wake(userID, n.Seq) > 0, nil
}

// PublishUnread does nothing: long polls answer notifications only.
func (w *Waiters) PublishUnread(context.Context, string, int64) {}

// Present reports whether userID has a waiting long poll here.
func (w *Waiters) Present(userID string) bool { return w.hub.present(userID) }

// LocalUsers calls fn for every user with a waiting long poll here.
func (w *Waiters) LocalUsers(fn func(userID string)) { w.hub.eachUser(fn) }

// Waiting is the number of long polls waiting now.
func (w *Waiters) Waiting() int { return int(w.n.Load()) }

// Shutdown answers every waiting long poll at once (they read their page
// and return) and makes later ones answer without waiting. It is
// idempotent and does not wait for the requests.
func (w *Waiters) Shutdown() {
	w.closing.Store(true)
	w.hub.wakeAll()
}
