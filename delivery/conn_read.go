package delivery

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// extendReadDeadline pushes the read deadline PingInterval+PongWait ahead,
// unless the connection is closing (the close grace deadline stands).
func (c *conn) extendReadDeadline() {
	if c.ws == nil || c.dead.Load() { // an SSE stream reads nothing
		return
	}
	c.setReadDeadline(c.g.readWait)
	if c.dead.Load() {
		// Closed between the check and the set: restore the short deadline
		// sendClose may already have set.
		c.setReadDeadline(c.g.cfg.CloseGrace)
	}
}

// setReadDeadline gives the client d from now to send something: the
// socket's read deadline in goroutine mode, the poller's idle deadline in
// epoll mode (where the socket's deadline only bounds a worker's read).
func (c *conn) setReadDeadline(d time.Duration) {
	if c.pc != nil {
		c.pc.readBy.Store(time.Now().Add(d).UnixNano())
		return
	}
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(d))
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
		mt, data, err := readMessage(c.ws, c.g.cfg.MaxMessageBytes, c.g.cfg.WriteTimeout)
		if err != nil {
			if c.readFailed(err) {
				c.linger()
			}
			return
		}
		c.onMessage(mt, data)
	}
}

// onMessage handles one client message (both read modes).
func (c *conn) onMessage(mt int, data []byte) {
	c.extendReadDeadline()
	if c.dead.Load() || c.rateLimited() {
		return // closing: wait for the client's close frame
	}
	if mt != websocket.TextMessage {
		c.close(CloseUnsupportedData, "binary frames are not supported", "protocol_error")
		return
	}
	f, err := DecodeClientFrame(data)
	if err != nil {
		var fe *FrameError
		errors.As(err, &fe)
		c.close(fe.Code, fe.Reason, "protocol_error")
		return
	}
	c.queueRead(f)
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

// readFailed records why reading stopped. linger reports that the caller
// should linger before the teardown.
func (c *conn) readFailed(err error) (linger bool) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent 1009; let the client read it before the TCP close.
		c.close(0, "", "too_big")
		return true
	case errors.As(err, &ce):
		c.close(0, "", "client_closed") // gorilla answered the close frame
	case errors.As(err, &ne) && ne.Timeout():
		c.close(0, "", "timeout")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		c.close(0, "", "client_gone")
	default:
		c.close(0, "", "read_error")
	}
	return false
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

// teardown releases the connection; only the reader (in epoll mode the
// poller's worker that unregistered it) calls it, once.
func (c *conn) teardown() {
	_ = c.ws.Close()
	c.release(c.g.m.connections, "disconnected")
}

// release takes an ended connection (WebSocket or SSE) out of the hub,
// the presence registry (its user's last) and open, its transport's
// gauge; it counts and logs why it ended.
func (c *conn) release(open prometheus.Gauge, msg string) {
	last, dropped := c.g.hub.remove(c)
	if last && c.g.cfg.Presence != nil {
		c.g.cfg.Presence.UserOffline(c.user)
	}
	if dropped {
		c.g.topicsChanged(c.user)
	}
	c.g.conns.Add(-1)
	open.Dec()
	c.mu.Lock()
	why := c.why
	c.mu.Unlock()
	c.g.m.disconnects.WithLabelValues(why).Inc()
	c.g.log.Debug(msg, "user", c.user, "reason", why)
}
