package delivery

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// pendingItem is a live notification held back while the connection
// replays or fills a gap; one without a frame is a check: the inbox's
// notification at seq is compared with the one sent (see checkQueued).
type pendingItem struct {
	seq, prev uint64
	id        string
	frame     []byte
}

// sentRing is how many of the latest seqs sent on a connection have their
// notification id remembered, to tell a duplicate (same id: skipped) from
// a seq conflict (another id: the store reused the seq, see resync).
const sentRing = 16

// sentID is one remembered (seq, id).
type sentID struct {
	seq uint64
	id  string
}

// conn is one client connection: a WebSocket (ws set, out a wsSink) or an
// SSE stream (ws nil, out an *sseSink, see sse.go). Replay, live delivery,
// the seam, gap fills and the slow-client cut are the same for both; only
// the sink that writes frames, pings and the close differs.
//
// Goroutines: the reader (readLoop) lives as long as the connection and
// tears it down. The write side has at most one owner at a time, recorded
// by writing: the ServeHTTP goroutine during the replay, then a short-lived
// writer started when a frame is queued, which exits once the queue is
// empty. After the connection is closed the owner sends the close frame and
// the write side is never handed over again.
type conn struct {
	g       *Gateway
	ws      *websocket.Conn // nil for an SSE stream
	out     sink            // where the write side's owner writes
	user    string
	expires int64 // the token's end, Unix nanoseconds; 0: none

	// frames is the user's client-frame bucket, shared with the user's
	// other connections on this gateway (set by hub.add).
	frames *rate.Limiter

	// dead mirrors closed for lock-free checks on hot paths.
	dead atomic.Bool
	// live: opened with ?broadcasts=live (broadcast.go); set before the
	// connection registers, never changed (beside dead: no padding).
	live bool

	// pc is the connection's registration with the gateway's poller in
	// epoll read mode (set before it is armed, never changed); nil in
	// goroutine mode and for SSE.
	pc *pollConn

	mu sync.Mutex
	// Everything below is guarded by mu.
	queue        [][]byte         // frames waiting for the writer, oldest first
	queued       int              // bytes in queue and in the batch being written
	writing      bool             // the write side has an owner
	pingDue      bool             // the owner should send a ping
	replaying    bool             // live notifications go to pending, not the queue
	filling      bool             // a gap fill runs; live notifications go to pending
	lastSeq      uint64           // newest seq queued or sent on this connection
	sent         [sentRing]sentID // ids of recent seqs sent, at seq % sentRing
	pending      []pendingItem
	pendingBytes int
	closed       bool
	closeCode    int // close frame the owner sends; 0: none (peer closed first, or gorilla sent 1009)
	closeReason  string
	why          string        // metric label of the disconnect
	wake         chan struct{} // closed by close: ends the wait for a replay slot
	checkedSeq   uint64        // lastSeq at the previous position round (position.go)

	// Read marks: the reader merges read frames into readAll/readSeqs
	// while a marker goroutine (marking) applies them, one store call at a
	// time; markFree wakes a reader waiting for room in readSeqs.
	marking  bool
	readAll  bool
	readSeqs []uint64
	markFree *sync.Cond
}

// errClosed stops a replay or fill on a closed connection.
var errClosed = errors.New("connection closed")

// errTooSlow: the queue is full; the connection is closed with 4008.
var errTooSlow = errors.New("queue full")

// writeErr marks an error of the socket (as opposed to the store).
type writeErr struct{ err error }

func (e writeErr) Error() string { return "write: " + e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

// goTracked runs f on a goroutine counted by the gateway's WaitGroup. It is
// only called under c.mu while the connection is not yet closed, or when it
// becomes closed; its reader (or ServeHTTP call) is then still counted,
// since the reader marks the connection closed before it exits, so the
// count is positive and Shutdown's Wait is safe.
func (c *conn) goTracked(f func()) {
	c.g.wg.Add(1)
	go func() {
		defer c.g.wg.Done()
		f()
	}()
}

// enqueueLocked queues frame unless that would exceed MaxQueueBytes, in
// which case it queues nothing and returns false. c.mu is held.
func (c *conn) enqueueLocked(frame []byte) bool {
	if c.queued+len(frame) > c.g.cfg.MaxQueueBytes {
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.startWriterLocked()
	return true
}

// startWriterLocked starts a writer unless the write side has an owner.
func (c *conn) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.goTracked(c.runWriter)
}

// offer hands a live notification to the connection. alive is false when
// the connection is closed; queued reports that the frame was queued now.
func (c *conn) offer(seq, prev uint64, id string, frame []byte) (alive, queued bool) {
	slow := false
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, false
	}
	switch {
	case c.replaying || c.filling:
		c.pending = append(c.pending, pendingItem{seq, prev, id, frame})
		c.pendingBytes += len(frame)
		slow = c.pendingBytes > c.g.cfg.MaxQueueBytes
	case c.seenLocked(seq, id, c.lastSeq) == seqSent:
		// Already sent (replayed, gap-filled, or delivered twice).
	case seq <= c.lastSeq:
		// A conflict: sent with another id. The inbox decides which one
		// is the notification at seq, off every lock.
		c.filling = true
		c.pending = append(c.pending, pendingItem{seq: seq})
		c.goTracked(c.fill)
	case prev > c.lastSeq:
		// A gap: fetch the missing ones from the inbox off every lock.
		c.filling = true
		c.pending = append(c.pending, pendingItem{seq, prev, id, frame})
		c.pendingBytes += len(frame)
		c.goTracked(c.fill)
	default:
		if queued = c.enqueueLocked(frame); queued {
			c.sentLocked(seq, id)
		} else {
			slow = true
		}
	}
	c.mu.Unlock()
	if slow {
		c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
	}
	return true, queued
}

// sentLocked records that the notification seq (id) was queued or sent:
// it is the connection's newest. c.mu is held.
func (c *conn) sentLocked(seq uint64, id string) {
	c.lastSeq = seq
	c.sent[seq%sentRing] = sentID{seq, id}
}

// send queues a non-notification frame (unread count, broadcast) and
// reports whether it did.
func (c *conn) send(frame []byte) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	ok := c.enqueueLocked(frame)
	c.mu.Unlock()
	if !ok {
		c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
	}
	return ok
}

// ping asks the write side's owner, or a new writer, to send a ping; or
// closes the connection with 4001 if its token has expired.
func (c *conn) ping(now int64) {
	if c.expires != 0 && now >= c.expires {
		c.close(CloseUnauthorized, "token expired: reconnect with a fresh token", "token_expired")
		return
	}
	c.mu.Lock()
	if !c.closed && !c.pingDue {
		c.pingDue = true
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// close marks the connection closed, drops what it had not sent, and has
// the write side's owner send a close frame with code (none if code is 0).
// The first call wins; later ones are no-ops.
func (c *conn) close(code int, reason, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.dead.Store(true)
	c.closeCode, c.closeReason, c.why = code, reason, why
	c.queue, c.pending, c.pendingBytes = nil, nil, 0
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
	if c.markFree != nil {
		c.markFree.Broadcast()
	}
	if code != 0 {
		c.startWriterLocked()
	}
}

// fail drops a connection whose socket failed: no close handshake.
func (c *conn) fail(why string) {
	c.close(0, "", why)
	c.out.drop()
}

// runWriter drains the queue as the write side's owner and releases the
// write side when it is empty. On a closed connection it sends the close
// frame instead and keeps the write side forever.
func (c *conn) runWriter() {
	inflight := 0
	for {
		c.mu.Lock()
		c.queued -= inflight
		if c.closed {
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			c.sendClose(code, reason)
			return
		}
		batch, ping := c.queue, c.pingDue
		c.queue, c.pingDue = nil, false
		if len(batch) == 0 && !ping {
			c.writing = false
			c.mu.Unlock()
			return
		}
		inflight = 0
		for _, f := range batch {
			inflight += len(f)
		}
		c.mu.Unlock()

		if ping {
			if err := c.out.ping(); err != nil {
				c.fail("write_error")
				return
			}
		}
		for _, f := range batch {
			if c.dead.Load() {
				break // closed meanwhile: skip to the close frame
			}
			if err := c.write(f); err != nil {
				c.fail("write_error")
				return
			}
		}
	}
}

// write sends one frame; only the write side's owner calls it.
func (c *conn) write(frame []byte) error {
	if err := c.out.frame(frame); err != nil {
		return writeErr{err}
	}
	return nil
}

// sendClose has the sink write the close (nothing if code is 0).
func (c *conn) sendClose(code int, reason string) {
	if code == 0 {
		return
	}
	c.out.close(code, reason)
}

// sink is the transport of a connection's write side. frame, ping and
// close are called only by the write side's owner, one at a time; drop may
// be called from any goroutine, at any time, more than once.
type sink interface {
	// frame writes one server frame, given in its WebSocket encoding
	// (frames.go); an SSE sink renders it as an event.
	frame(f []byte) error
	// ping writes a heartbeat (a ping frame, or an SSE comment).
	ping() error
	// close writes the close (frame or event) with code and reason; it is
	// the last write.
	close(code int, reason string)
	// drop ends the transport at once, without a close.
	drop()
}

// wsSink is the sink of a WebSocket connection.
type wsSink struct{ c *conn }

var (
	_ sink = wsSink{}
	_ sink = (*sseSink)(nil)
)

func (s wsSink) frame(f []byte) error {
	_ = s.c.ws.SetWriteDeadline(time.Now().Add(s.c.g.cfg.WriteTimeout))
	s.c.g.compressFrame(s.c.ws, f)
	return s.c.ws.WriteMessage(websocket.TextMessage, f)
}

func (s wsSink) ping() error {
	return s.c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.c.g.cfg.WriteTimeout))
}

// drop closes the socket; in epoll mode it only shuts the socket down, so
// that the descriptor stays the poller's until its worker has unregistered
// it (a closed descriptor's number can be reused at once).
func (s wsSink) drop() {
	if s.c.pc != nil {
		s.c.pc.shutdown()
		return
	}
	_ = s.c.ws.Close()
}

// close writes the close frame and gives the client CloseGrace to answer
// it; the reader then sees the answer (or the deadline) and tears the
// connection down.
func (s wsSink) close(code int, reason string) {
	c := s.c
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(c.g.cfg.WriteTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		s.drop()
		return
	}
	c.setReadDeadline(c.g.cfg.CloseGrace)
}
