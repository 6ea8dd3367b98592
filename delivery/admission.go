package delivery

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Admission control for reconnect storms.
//
// When a gateway holding 15,000 clients dies they all reconnect to the
// survivors within seconds. Each upgrade costs a goroutine, buffers and,
// above all, a replay: three or more store reads. Unbounded, the survivors
// would spend their CPU on handshakes that time out half-way, the store
// would see thousands of concurrent reads, and the clients would retry in
// lockstep. Two bounds stop that:
//
//   - The upgrade bucket (UpgradeRate, UpgradeBurst) is checked after the
//     cheap checks (method, token, origin, per-user cap) and before the
//     upgrade: a request that finds it empty gets 503 with a jittered
//     Retry-After (see admit), so the refused crowd comes back spread out
//     at about the rate the bucket admits, instead of together. A
//     refusal costs no goroutine beyond the request's and no store read.
//     Bad tokens are refused (401) before the bucket, so garbage does not
//     use up the tokens of real clients.
//   - The replay slots (MaxReplays) bound the replays reading the store at
//     once. A connection without a slot keeps its socket (its reader runs,
//     live notifications for it are buffered up to MaxQueueBytes) but does
//     not touch the store; after ReplayWait without a slot it is closed
//     with 1013 "try again later", and the client reconnects with backoff.
//   - The bucket alone cannot know how fast the store is: when replays
//     take longer than MaxReplays/UpgradeRate (a store slowed by the storm
//     itself, or by anything else), admitted connections pile up waiting
//     for a slot, most of them to be closed with 1013 after ReplayWait. So
//     while MaxReplayQueue connections already wait, upgrades are refused
//     before the upgrade too (503, same Retry-After rule): the store's
//     pace, not the bucket's, then sets the admission rate, and a refusal
//     costs far less than an upgrade that ends in 1013.
//
// Memory: at most MaxReplays replays hold a page (ReplayPageSize
// notifications) each, and about MaxReplayQueue connections (plus the
// handshakes in flight) wait for a slot, each holding its ServeHTTP
// goroutine, read buffer and at most MaxQueueBytes of buffered
// notifications. Open connections are bounded by the process's file
// limit and --http-max-conns, not here.

// Reasons of herald_gateway_upgrades_refused_total.
const (
	refusedRate     = "rate"           // the upgrade bucket was empty (503)
	refusedBacklog  = "replay_backlog" // MaxReplayQueue connections wait for a replay slot (503)
	refusedShutdown = "shutting_down"  // Shutdown had begun (503)
	refusedUserCap  = "too_many_conns" // MaxConnsPerUser (429)
)

// errReplayWait: no replay slot within ReplayWait.
var errReplayWait = errors.New("no replay slot within the wait")

// admission is the gateway's upgrade bucket and replay slots.
type admission struct {
	now      func() time.Time // injected by tests
	rnd      func(n int) int  // uniform in [0, n); injected by tests
	retryMax time.Duration

	mu      sync.Mutex // guards upgrade and the refusal windows
	upgrade *rate.Limiter
	// Refusals in the current one-second window (from winStart) and in the
	// previous one: an estimate of how many refused clients will retry.
	winStart   time.Time
	cur, prior int

	slots    chan struct{}
	waiting  atomic.Int64 // connections waiting for a slot
	maxQueue int64        // MaxReplayQueue
}

func newAdmission(cfg *Config) *admission {
	return &admission{
		now:      time.Now,
		rnd:      rand.IntN,
		retryMax: cfg.UpgradeRetryMax,
		upgrade:  rate.NewLimiter(rate.Limit(cfg.UpgradeRate), cfg.UpgradeBurst),
		slots:    make(chan struct{}, cfg.MaxReplays),
		maxQueue: int64(cfg.MaxReplayQueue),
	}
}

// admit takes a token of the upgrade bucket. When it is empty, retryAfter
// is the jittered wait to tell the client, in whole seconds (at least 1).
//
// The wait is uniform in [lo, lo+spread], capped at UpgradeRetryMax: lo is
// the time until the bucket's next token, spread the time the bucket needs
// to admit the clients refused in the last second or two. So a crowd of
// 3,000 refused at 500/s comes back over about 6 s, at about the rate it
// can be admitted, while a handful refused is told to come back in a
// second or two rather than up to UpgradeRetryMax.
//
// refused is the metric label of a refusal: refusedRate, or refusedBacklog
// when MaxReplayQueue connections already wait for a replay slot.
func (a *admission) admit() (ok bool, retryAfter int, refused string) {
	limit := float64(a.upgrade.Limit())
	backlog := a.maxQueue > 0 && a.waiting.Load() >= a.maxQueue
	if !backlog && math.IsInf(limit, 1) {
		return true, 0, ""
	}
	a.mu.Lock()
	now := a.now()
	need := 0.0
	refused = refusedBacklog
	if !backlog {
		if a.upgrade.AllowN(now, 1) {
			a.mu.Unlock()
			return true, 0, ""
		}
		// Time until a token is there (the bucket holds less than one).
		need = (1 - a.upgrade.TokensAt(now)) / limit
		refused = refusedRate
	}
	if math.IsInf(limit, 1) {
		limit = float64(cap(a.slots)) // no bucket: spread by the slots
	}
	switch d := now.Sub(a.winStart); {
	case d >= 2*time.Second || d < 0:
		a.winStart, a.cur, a.prior = now, 0, 0
	case d >= time.Second:
		a.winStart, a.cur, a.prior = a.winStart.Add(time.Second), 0, a.cur
	}
	a.cur++
	waiting := max(a.cur, a.prior)
	a.mu.Unlock()
	lo := max(1, int(math.Ceil(need)))
	hi := min(lo+int(math.Ceil(float64(waiting)/limit)), int(math.Ceil(a.retryMax.Seconds())))
	hi = max(lo, hi)
	return false, lo + a.rnd(hi-lo+1), refused
}

// refuseUpgrade answers an upgrade refused by the bucket: 503, Retry-After
// and the contract's JSON error.
func refuseUpgrade(w http.ResponseWriter, retryAfter int) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeError(w, http.StatusServiceUnavailable,
		fmt.Sprintf("too many connections being opened, retry in %d s", retryAfter))
}

// awaitReplaySlot takes a replay slot, waiting at most ReplayWait. It
// returns errClosed when the connection closes (or the gateway shuts down)
// while waiting, errReplayWait when the wait runs out. The wait is
// observed in herald_gateway_replay_wait_seconds.
func (c *conn) awaitReplaySlot() error {
	g := c.g
	select {
	case g.adm.slots <- struct{}{}:
		g.m.replayWait.Observe(0)
		return nil
	default:
	}
	start := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	wake := make(chan struct{})
	c.wake = wake
	c.mu.Unlock()
	g.adm.waiting.Add(1)
	g.m.replaysWaiting.Inc()
	defer func() {
		g.m.replaysWaiting.Dec()
		g.adm.waiting.Add(-1)
	}()
	t := time.NewTimer(g.cfg.ReplayWait)
	defer t.Stop()
	var err error
	select {
	case g.adm.slots <- struct{}{}:
	case <-wake:
		err = errClosed
	case <-g.ctx.Done():
		err = errClosed
	case <-t.C:
		err = errReplayWait
	}
	g.m.replayWait.Observe(time.Since(start).Seconds())
	c.mu.Lock()
	if c.wake == wake {
		c.wake = nil
	}
	c.mu.Unlock()
	return err
}

// releaseReplaySlot gives back the slot awaitReplaySlot took.
func (g *Gateway) releaseReplaySlot() { <-g.adm.slots }
