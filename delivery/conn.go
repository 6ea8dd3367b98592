package delivery

import (
	"cmp"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	herald "github.com/heraldhq/herald"
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

// conn is one WebSocket connection.
//
// Goroutines: the reader (readLoop) lives as long as the connection and
// tears it down. The write side has at most one owner at a time, recorded
// by writing: the ServeHTTP goroutine during the replay, then a short-lived
// writer started when a frame is queued, which exits once the queue is
// empty. After the connection is closed the owner sends the close frame and
// the write side is never handed over again.
type conn struct {
	g       *Gateway
	ws      *websocket.Conn
	user    string
	expires int64 // the token's end, Unix nanoseconds; 0: none

	// frames is the user's client-frame bucket, shared with the user's
	// other connections on this gateway (set by hub.add).
	frames *rate.Limiter

	// dead mirrors closed for lock-free checks on hot paths.
	dead atomic.Bool

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
	why          string // metric label of the disconnect

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

// seqState classifies a notification against what a connection sent.
type seqState int

const (
	seqNew      seqState = iota // after the last seq sent: send it
	seqSent                     // sent already, or taken for a duplicate: skip it
	seqConflict                 // sent with another id: the inbox reused the seq
)

// seenLocked classifies the notification seq (id) against last, the newest
// seq sent. A seq sent with another id is a conflict: the inbox reused the
// seq (its copy of the first was lost, e.g. in a store crash), and the
// client must get the new one. Only the last sentRing seqs are
// remembered; an older one, or one without an id, is taken for a
// duplicate. c.mu is held.
func (c *conn) seenLocked(seq uint64, id string, last uint64) seqState {
	if seq > last {
		return seqNew
	}
	e := c.sent[seq%sentRing]
	if id == "" || e.seq != seq || e.id == "" || e.id == id {
		return seqSent
	}
	return seqConflict
}

// sendStoredLocked classifies a notification read from the inbox: true
// means send it. For a conflict the inbox is right: *last is rewound to
// seq-1 (the connection resumes from the reused seq: it is sent again and
// everything after it follows) and it is sent. c.mu is held.
func (c *conn) sendStoredLocked(n *herald.Notification, last *uint64) bool {
	switch c.seenLocked(n.Seq, n.ID, *last) {
	case seqSent:
		return false
	case seqConflict:
		c.g.log.Warn("seq conflict: the inbox reused a seq already sent; resending from it",
			"user", c.user, "seq", n.Seq, "sent_id", c.sent[n.Seq%sentRing].id, "id", n.ID, "was_at", *last)
		c.g.m.conflicts.Inc()
		*last = n.Seq - 1
	}
	return true
}

// storedAt reads the inbox's notification at seq; ok is false when the
// inbox has none.
func (c *conn) storedAt(seq uint64) (n herald.Notification, ok bool, err error) {
	page, err := c.g.list(c.user, seq-1, 1, false)
	if err != nil || len(page) == 0 || page[0].Seq != seq {
		return herald.Notification{}, false, err
	}
	return page[0], true, nil
}

// send queues a non-notification frame (unread count).
func (c *conn) send(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	ok := c.enqueueLocked(frame)
	c.mu.Unlock()
	if !ok {
		c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
	}
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
	_ = c.ws.Close()
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
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.g.cfg.WriteTimeout)); err != nil {
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

// write sends one text frame; only the write side's owner calls it.
func (c *conn) write(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return writeErr{err}
	}
	return nil
}

// sendClose writes the close frame and gives the client CloseGrace to
// answer it; the reader then sees the answer (or the deadline) and tears
// the connection down.
func (c *conn) sendClose(code int, reason string) {
	if code == 0 {
		return
	}
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(c.g.cfg.WriteTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		_ = c.ws.Close()
		return
	}
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(c.g.cfg.CloseGrace))
}

// extendReadDeadline pushes the read deadline PingInterval+PongWait ahead,
// unless the connection is closing (the close grace deadline stands).
func (c *conn) extendReadDeadline() {
	if c.dead.Load() {
		return
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(c.g.readWait))
	if c.dead.Load() {
		// Closed between the check and the set: restore the short deadline
		// sendClose may already have set.
		_ = c.ws.SetReadDeadline(time.Now().Add(c.g.cfg.CloseGrace))
	}
}

// rateLimited takes one token of the user's frame bucket, or closes the
// connection with 4029 and reports true when the bucket is empty.
func (c *conn) rateLimited() bool {
	if c.frames.Allow() {
		return false
	}
	c.close(CloseRateLimited, rateLimitedReason(c.g.cfg.FrameRate), "rate_limited")
	return true
}

// onPing answers a client's ping, which also counts as activity (and as a
// frame of the user's bucket).
func (c *conn) onPing(data string) error {
	c.extendReadDeadline()
	if c.dead.Load() || c.rateLimited() {
		return nil
	}
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
		return nil // as gorilla's default: a failed pong is the writer's problem
	}
	return err
}

// readLoop reads client frames until the connection fails or is closed,
// then tears it down.
func (c *conn) readLoop() {
	defer c.g.wg.Done()
	defer c.teardown()
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		c.extendReadDeadline()
		if c.dead.Load() || c.rateLimited() {
			continue // closing: wait for the client's close frame
		}
		if mt != websocket.TextMessage {
			c.close(CloseUnsupportedData, "binary frames are not supported", "protocol_error")
			continue
		}
		f, err := DecodeClientFrame(data)
		if err != nil {
			var fe *FrameError
			errors.As(err, &fe)
			c.close(fe.Code, fe.Reason, "protocol_error")
			continue
		}
		c.queueRead(f)
	}
}

// queueRead merges a read frame into the pending read marks and starts the
// marker unless it runs. While a store call is in flight, later frames
// accumulate and are applied by one call: "all" absorbs everything, seqs
// are united up to MaxReadSeqs per call. A reader whose seqs do not fit
// waits (at most one store call, bounded by StoreTimeout) for the marker
// to take the pending ones.
func (c *conn) queueRead(f ClientFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.markFree == nil {
		c.markFree = sync.NewCond(&c.mu)
	}
	for !c.closed && !f.All && !c.readAll && len(c.readSeqs)+len(f.Seqs) > MaxReadSeqs {
		c.markFree.Wait()
	}
	if c.closed {
		return
	}
	if f.All || c.readAll {
		c.readAll, c.readSeqs = true, nil
	} else {
		c.readSeqs = append(c.readSeqs, f.Seqs...)
	}
	if !c.marking {
		c.marking = true
		c.goTracked(c.markLoop)
	}
}

// markLoop applies the pending read marks until none are left. Frames
// accepted before the connection closed are still applied (on Shutdown the
// cancelled store calls end them at once).
func (c *conn) markLoop() {
	for {
		c.mu.Lock()
		all, seqs := c.readAll, c.readSeqs
		if !all && len(seqs) == 0 {
			c.marking = false
			c.mu.Unlock()
			return
		}
		c.readAll, c.readSeqs = false, nil
		c.markFree.Broadcast()
		c.mu.Unlock()
		slices.Sort(seqs)
		c.markRead(all, slices.Compact(seqs))
	}
}

// markRead applies read marks (all, or seqs) and publishes the new unread
// count to all of the user's connections.
func (c *conn) markRead(all bool, seqs []uint64) {
	ctx, cancel := c.g.storeCtx()
	defer cancel()
	var unread int64
	var err error
	if all {
		unread, err = c.g.cfg.Store.MarkAllRead(ctx, c.user)
	} else {
		unread, err = c.g.cfg.Store.MarkRead(ctx, c.user, seqs)
	}
	if err != nil {
		if !c.dead.Load() {
			c.g.log.Warn("mark read failed", "user", c.user, "err", err)
			c.close(CloseInternalError, "inbox unavailable, reconnect", "store_error")
		}
		return
	}
	c.g.unread.PublishUnread(ctx, c.user, unread)
}

// readFailed records why reading stopped.
func (c *conn) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent 1009; let the client read it before the TCP close.
		c.close(0, "", "too_big")
		c.linger()
	case errors.As(err, &ce):
		c.close(0, "", "client_closed") // gorilla answered the close frame
	case errors.As(err, &ne) && ne.Timeout():
		c.close(0, "", "timeout")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		c.close(0, "", "client_gone")
	default:
		c.close(0, "", "read_error")
	}
}

// lingerIdle ends linger once the client has been quiet that long.
const lingerIdle = 100 * time.Millisecond

// linger discards input until the client closes, goes quiet for
// lingerIdle, or CloseGrace passes: closing a socket with unread input
// sends a TCP reset, which can destroy the close frame still in flight.
func (c *conn) linger() {
	nc := c.ws.NetConn()
	hard := time.Now().Add(c.g.cfg.CloseGrace)
	var buf [512]byte
	for {
		deadline := time.Now().Add(lingerIdle)
		if deadline.After(hard) {
			deadline = hard
		}
		_ = nc.SetReadDeadline(deadline)
		if _, err := nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// teardown releases the connection; only the reader calls it, once.
func (c *conn) teardown() {
	_ = c.ws.Close()
	if c.g.hub.remove(c) && c.g.cfg.Presence != nil {
		c.g.cfg.Presence.UserOffline(c.user)
	}
	c.g.conns.Add(-1)
	c.g.m.connections.Dec()
	c.mu.Lock()
	why := c.why
	c.mu.Unlock()
	c.g.m.disconnects.WithLabelValues(why).Inc()
	c.g.log.Debug("disconnected", "user", c.user, "reason", why)
}

// replay runs on the ServeHTTP goroutine, which owns the write side until
// it returns: the inbox replay, the buffered live notifications, the synced
// frame, then whatever was queued meanwhile.
func (c *conn) replay(after uint64, hasAfter bool) {
	err := c.replayAndSync(after, hasAfter)
	var we writeErr
	switch {
	case err == nil, errors.Is(err, errClosed):
	case errors.As(err, &we):
		c.fail("write_error")
		return
	case c.dead.Load():
		// A store call failed because the connection or gateway closed.
	default:
		c.g.log.Warn("replay failed", "user", c.user, "err", err)
		c.close(CloseInternalError, "inbox unavailable, reconnect", "store_error")
	}
	c.runWriter()
}

func (c *conn) replayAndSync(after uint64, hasAfter bool) error {
	g := c.g
	head, err := g.lastSeq(c.user)
	if err != nil {
		return err
	}
	last := after
	if hasAfter {
		// A client ahead of the inbox (e.g. after a store reset) restarts
		// from its head; synced tells it the seq it is at.
		last = min(last, head)
		for {
			page, err := g.list(c.user, last, g.cfg.ReplayPageSize, false)
			if err != nil {
				return err
			}
			for i := range page {
				if err := c.replayOne(&page[i], &last); err != nil {
					return err
				}
			}
			if len(page) < g.cfg.ReplayPageSize {
				break
			}
			c.extendReadDeadline() // long replays are progress, not silence
		}
	} else {
		page, err := g.list(c.user, 0, g.cfg.ReplayLimit, true)
		if err != nil {
			return err
		}
		for i := range page {
			if err := c.replayOne(&page[i], &last); err != nil {
				return err
			}
		}
		// Older read ones, and unread ones past the limit, are the HTTP
		// API's business: live delivery continues from the head.
		last = max(last, head)
	}

	// The seam: send what arrived live meanwhile, until nothing is pending;
	// then switch to live under the same lock, so every later notification
	// is queued behind the synced frame.
	for {
		unread, err := g.unreadCount(c.user)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errClosed
		}
		pend := c.pending
		c.pending, c.pendingBytes = nil, 0
		if len(pend) == 0 {
			c.replaying = false
			c.lastSeq = last
			c.mu.Unlock()
			return c.write(encodeSynced(last, unread))
		}
		c.mu.Unlock()
		slices.SortFunc(pend, func(a, b pendingItem) int { return cmp.Compare(a.seq, b.seq) })
		for _, p := range pend {
			c.mu.Lock()
			state := c.seenLocked(p.seq, p.id, last)
			c.mu.Unlock()
			if p.frame == nil {
				state = seqConflict // a check
			}
			switch state {
			case seqSent:
				continue // replayed already
			case seqConflict:
				if err := c.checkNow(&last, p.seq); err != nil {
					return err
				}
				continue
			}
			if p.prev > last {
				if err := c.fillNow(&last, p.seq, p.prev); err != nil {
					return err
				}
			}
			if err := c.write(p.frame); err != nil {
				return err
			}
			c.mu.Lock()
			c.sent[p.seq%sentRing] = sentID{p.seq, p.id}
			c.mu.Unlock()
			last = p.seq
			c.g.m.live.Inc()
		}
	}
}

// replayOne writes one stored notification during the replay.
func (c *conn) replayOne(n *herald.Notification, last *uint64) error {
	if c.dead.Load() {
		return errClosed
	}
	c.mu.Lock()
	send := c.sendStoredLocked(n, last)
	c.mu.Unlock()
	if !send {
		return nil
	}
	frame, err := encodeNotification(n)
	if err != nil {
		return err
	}
	if err := c.write(frame); err != nil {
		return err
	}
	c.mu.Lock()
	c.sent[n.Seq%sentRing] = sentID{n.Seq, n.ID}
	c.mu.Unlock()
	*last = n.Seq
	c.g.m.replay.Inc()
	return nil
}

// checkNow resolves, as the write side's owner, a live notification at
// seq <= *last that conflicts with the one sent: the inbox's notification
// at seq is sent (from seq on) if it is not the one sent.
func (c *conn) checkNow(last *uint64, seq uint64) error {
	n, ok, err := c.storedAt(seq)
	if err != nil || !ok {
		return err
	}
	return c.replayOne(&n, last)
}

// fillNow writes, as the write side's owner, the stored notifications
// between *last and to (exclusive).
func (c *conn) fillNow(last *uint64, to, prev uint64) error {
	for {
		ns, done, err := c.g.gapPage(c.user, *last, to)
		if err != nil {
			return err
		}
		for i := range ns {
			if err := c.replayOne(&ns[i], last); err != nil {
				return err
			}
		}
		if done {
			c.g.missing(c.user, *last, prev)
			return nil
		}
	}
}

// fill runs on its own goroutine while c.filling: it queues the stored
// notifications that fill the gap before the oldest pending one, then the
// pending ones that became contiguous, until nothing is pending. Store
// reads happen without any lock held.
func (c *conn) fill() {
	for {
		c.mu.Lock()
		if c.closed {
			c.filling = false
			c.mu.Unlock()
			return
		}
		slices.SortFunc(c.pending, func(a, b pendingItem) int { return cmp.Compare(a.seq, b.seq) })
		i, ok := 0, true
		for ; i < len(c.pending); i++ {
			p := c.pending[i]
			if p.frame == nil {
				break // a check: made below, off the lock
			}
			switch c.seenLocked(p.seq, p.id, c.lastSeq) {
			case seqSent:
				continue
			case seqConflict:
				c.pending[i] = pendingItem{seq: p.seq}
				i-- // check it now
				continue
			}
			if p.prev > c.lastSeq {
				break
			}
			if ok = c.enqueueLocked(p.frame); !ok {
				break
			}
			c.sentLocked(p.seq, p.id)
			c.g.m.live.Inc()
		}
		if !ok {
			c.mu.Unlock()
			c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
			return
		}
		c.pending = c.pending[i:]
		c.pendingBytes = 0
		for _, p := range c.pending {
			c.pendingBytes += len(p.frame)
		}
		if len(c.pending) == 0 {
			c.pending, c.filling = nil, false
			c.mu.Unlock()
			return
		}
		first := c.pending[0]
		if first.frame == nil {
			c.pending = c.pending[1:]
		}
		from, to, prev := c.lastSeq, first.seq, first.prev
		c.mu.Unlock()

		var err error
		if first.frame == nil {
			err = c.checkQueued(first.seq)
		} else {
			err = c.fillQueued(from, to, prev)
		}
		if err != nil {
			if !errors.Is(err, errClosed) && !c.dead.Load() {
				c.g.log.Warn("gap fill failed", "user", c.user, "err", err)
				c.close(CloseInternalError, "inbox unavailable, reconnect", "store_error")
			}
			return
		}
	}
}

// checkQueued resolves a live notification at seq that conflicted with the
// one sent: it queues the inbox's notification at seq (rewinding the
// connection to it) unless it is the one sent.
func (c *conn) checkQueued(seq uint64) error {
	n, ok, err := c.storedAt(seq)
	if err != nil || !ok {
		return err
	}
	frame, err := encodeNotification(&n)
	if err != nil {
		return err
	}
	c.mu.Lock()
	switch {
	case c.closed:
		err = errClosed
	case !c.sendStoredLocked(&n, &c.lastSeq):
	case !c.enqueueLocked(frame):
		err = errTooSlow
	default:
		c.sentLocked(n.Seq, n.ID)
		c.g.m.replay.Inc()
	}
	c.mu.Unlock()
	if errors.Is(err, errTooSlow) {
		c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
		return errClosed
	}
	return err
}

// fillQueued queues the stored notifications in (from, to).
func (c *conn) fillQueued(from, to, prev uint64) error {
	for {
		ns, done, err := c.g.gapPage(c.user, from, to)
		if err != nil {
			return err
		}
		frames := make([][]byte, len(ns))
		for i := range ns {
			if frames[i], err = encodeNotification(&ns[i]); err != nil {
				return err
			}
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errClosed
		}
		for i := range ns {
			if !c.sendStoredLocked(&ns[i], &c.lastSeq) {
				continue
			}
			if !c.enqueueLocked(frames[i]) {
				c.mu.Unlock()
				c.close(CloseTooSlow, "too slow: reconnect with after=<last seq>", "too_slow")
				return errClosed
			}
			c.sentLocked(ns[i].Seq, ns[i].ID)
			c.g.m.replay.Inc()
		}
		from = c.lastSeq
		if done && c.lastSeq < prev {
			c.g.missing(c.user, c.lastSeq, prev)
			c.lastSeq = prev
		}
		c.mu.Unlock()
		if done {
			return nil
		}
	}
}
