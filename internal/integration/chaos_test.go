//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The chaos suite's driver: one reconnecting WebSocket client per user,
// the way a client following the contract behaves (docs/ARCHITECTURE.md,
// WebSocket protocol): on any close or failed dial it waits a jittered,
// growing backoff and reconnects with after=<the last seq it received>,
// to the same gateway first and to the next one when that one does not
// answer. Each client records what it saw; the verdict is drawn after the
// run (chaos_scenarios_test.go), never inside the goroutines, which must
// not call t.Fatal.

// Reconnect backoff: full jitter over a doubling window, as the JS SDK
// will do (a thundering herd of clients all retrying at the same instant
// is what the reconnect-storm part is about).
const (
	chaosBackoffBase = 100 * time.Millisecond
	chaosBackoffMax  = 2 * time.Second
)

// chaosDriver owns the clients and the gateway slots they dial.
type chaosDriver struct {
	mu      sync.Mutex
	gws     []string // current address per gateway slot; a restarted gateway gets a new one
	clients []*chaosClient
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// receipt is one notification as a client received it.
type receipt struct {
	seq           uint64
	created, recv time.Time
}

// chaosClient is one user's client. Everything below mu is written by its
// goroutine and read by the test once the driver has stopped (or, for
// the progress checks, under mu).
type chaosClient struct {
	user, token string
	home        int // the gateway slot it dials first
	seed        uint64

	mu        sync.Mutex
	last      uint64            // the highest seq received; connections resume after it
	ids       map[uint64]string // event id per seq, the first time it was received
	receipts  []receipt         // every notification received, in order
	connects  int               // successful upgrades
	synced    int               // synced frames received
	again     int               // seqs received again in a resume's replay (deduped, allowed)
	problems  []string          // what broke the contract on a connection: a duplicate, a gap, a seq going back
	closes    map[string]int    // why connections ended, for the log
	dialFails int
}

func newChaosDriver(gws []string) *chaosDriver {
	return &chaosDriver{gws: append([]string(nil), gws...)}
}

// setGateway replaces the address of a gateway slot (after a restart).
func (d *chaosDriver) setGateway(slot int, addr string) {
	d.mu.Lock()
	d.gws[slot] = addr
	d.mu.Unlock()
}

func (d *chaosDriver) gateway(i int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gws[i%len(d.gws)]
}

// start runs one client per user, homed on the gateway slots in turn.
func (d *chaosDriver) start(users, tokens []string, seed uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for i, u := range users {
		c := &chaosClient{user: u, token: tokens[i], home: i, seed: seed + uint64(i),
			ids: map[uint64]string{}, closes: map[string]int{}}
		d.clients = append(d.clients, c)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			c.run(ctx, d)
		}()
	}
}

// stop closes every connection and waits for the clients to return.
func (d *chaosDriver) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

// allSynced reports whether every client has been through at least one
// replay (so that it is connected and receives live notifications).
func (d *chaosDriver) allSynced() bool {
	for _, c := range d.clients {
		c.mu.Lock()
		n := c.synced
		c.mu.Unlock()
		if n == 0 {
			return false
		}
	}
	return true
}

// behind returns how many clients have not yet received seq want[user]
// (the number of events accepted for their user).
func (d *chaosDriver) behind(want map[string][]string) int {
	n := 0
	for _, c := range d.clients {
		c.mu.Lock()
		if c.last < uint64(len(want[c.user])) {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// resumedAfter returns how many clients have received a notification for
// an event created after t.
func (d *chaosDriver) resumedAfter(t time.Time) int {
	n := 0
	for _, c := range d.clients {
		c.mu.Lock()
		for i := len(c.receipts) - 1; i >= 0; i-- {
			if c.receipts[i].created.After(t) {
				n++
				break
			}
		}
		c.mu.Unlock()
	}
	return n
}

func (c *chaosClient) run(ctx context.Context, d *chaosDriver) {
	rng := rand.New(rand.NewPCG(c.seed, 0x5eed))
	slot := c.home
	backoff := chaosBackoffBase
	wait := func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rng.Int64N(int64(backoff)) + 1)):
		}
		backoff = min(2*backoff, chaosBackoffMax)
	}
	for ctx.Err() == nil {
		c.mu.Lock()
		after := c.last
		c.mu.Unlock()
		conn, err := c.dial(ctx, d.gateway(slot), after)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.dialFails++
			c.mu.Unlock()
			slot++ // fall over: the next gateway, then round again
			wait()
			continue
		}
		c.mu.Lock()
		c.connects++
		c.mu.Unlock()
		why := c.read(ctx, conn, after)
		if ctx.Err() != nil {
			return // the driver closed it: not a close to report
		}
		c.mu.Lock()
		c.closes[why]++
		c.mu.Unlock()
		// A connection that delivered its replay resets the backoff: the
		// next outage starts from the base again.
		backoff = chaosBackoffBase
		wait()
	}
}

func (c *chaosClient) dial(ctx context.Context, addr string, after uint64) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := "ws://" + addr + "/v1/ws?token=" + c.token + "&after=" + strconv.FormatUint(after, 10)
	conn, resp, err := websocket.DefaultDialer.DialContext(dctx, u, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // the handshake's answer; its status is in err
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// read consumes one connection until it closes and returns why it ended.
// A connection must deliver after+1, after+2, … in order, each once:
// anything else is a problem. A seq at or below what the client already
// had, arriving in the replay, is counted as seen again (the contract
// allows a reconnect to overlap) and not a problem.
func (c *chaosClient) read(ctx context.Context, conn *websocket.Conn, after uint64) string {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer func() { _ = conn.Close() }() // the connection is over either way
	connLast := after
	synced := false
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				return "close " + strconv.Itoa(ce.Code)
			}
			return "read error"
		}
		var f frame
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		switch f.Type {
		case "synced":
			synced = true
			c.mu.Lock()
			c.synced++
			if f.Seq < connLast {
				c.problems = append(c.problems, fmt.Sprintf("synced at seq %d after resuming from %d (the inbox went back)", f.Seq, after))
			}
			c.mu.Unlock()
		case "notification":
			n := f.Notification
			now := time.Now()
			c.mu.Lock()
			switch {
			case n.Seq <= connLast && !synced && n.Seq <= after:
				c.again++
			case n.Seq <= connLast:
				c.problems = append(c.problems, fmt.Sprintf("seq %d received again on one connection after %d (event %s)", n.Seq, connLast, n.EventID))
			case n.Seq > connLast+1:
				c.problems = append(c.problems, fmt.Sprintf("seq %d received after %d: a gap (event %s)", n.Seq, connLast, n.EventID))
			}
			if prev, ok := c.ids[n.Seq]; ok && prev != n.EventID {
				c.problems = append(c.problems, fmt.Sprintf("seq %d received as event %s and as event %s", n.Seq, prev, n.EventID))
			}
			if _, ok := c.ids[n.Seq]; !ok {
				c.ids[n.Seq] = n.EventID
				c.receipts = append(c.receipts, receipt{seq: n.Seq, created: n.Created, recv: now})
			}
			connLast = max(connLast, n.Seq)
			c.last = max(c.last, n.Seq)
			c.mu.Unlock()
		}
	}
}

// chaosStream is the suite's producer: rate events/s, spread over the
// users in turn, through the harness's Kafka producer (acks=all,
// idempotent) until finish. It is startStream with a longer bound on each
// produce: env.load gives up on a record after two minutes, and a Kafka
// restart on a loaded machine can take longer than that; a produce that
// fails at its deadline may still have been written (its answer was what
// got lost), and such an event, neither accepted nor absent, would make
// the exactly-once check fail for a reason that is the test's. Here a
// record waits up to the run's deadline; one that fails anyway is counted
// and reported, and its id is kept apart.
type chaosStream struct {
	stop, done chan struct{}
	wg         sync.WaitGroup

	mu       sync.Mutex
	want     map[string][]string // acknowledged ids per user, in produce order
	failed   map[string][]string // ids whose produce failed, per user: in doubt
	distinct int
	sent     int
}

func startChaosStream(e *env, cl *kgo.Client, users []string, rate int, bound time.Time) *chaosStream {
	s := &chaosStream{stop: make(chan struct{}), done: make(chan struct{}),
		want: map[string][]string{}, failed: map[string][]string{}}
	ctx, cancel := context.WithDeadline(context.Background(), bound)
	const tick = 20 * time.Millisecond
	perTick := max(1, rate*int(tick)/int(time.Second))
	go func() {
		defer close(s.done)
		defer cancel()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for i := 0; ; {
			select {
			case <-s.stop:
				s.wg.Wait()
				return
			case <-ticker.C:
			}
			for range perTick {
				user, id := users[i%len(users)], fmt.Sprintf("c%d", i)
				i++
				r := eventRecord(id, user, "chaos")
				r.Topic = e.prefix + "events"
				s.wg.Add(1)
				s.mu.Lock()
				s.sent++
				s.mu.Unlock()
				// The promises of one partition run in order, and a user
				// is one key: want[user] is in produce order.
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					defer s.wg.Done()
					s.mu.Lock()
					defer s.mu.Unlock()
					if err != nil {
						s.failed[user] = append(s.failed[user], id)
						return
					}
					s.want[user] = append(s.want[user], id)
					s.distinct++
				})
			}
		}
	}()
	return s
}

// finish stops the stream and waits for the last acks (bounded by the
// stream's deadline). It may be called again.
func (s *chaosStream) finish() (map[string][]string, int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want, s.distinct
}
