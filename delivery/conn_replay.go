package delivery

import (
	"cmp"
	"errors"
	"slices"

	herald "github.com/heraldhq/herald"
)

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

// replay runs on the ServeHTTP goroutine, which owns the write side until
// it returns: it waits for a replay slot (admission.go), then the inbox
// replay, the buffered live notifications, the synced frame, then whatever
// was queued meanwhile.
func (c *conn) replay(after uint64, hasAfter bool) {
	err := c.awaitReplaySlot()
	if err == nil {
		err = c.replayAndSync(after, hasAfter)
		c.g.releaseReplaySlot()
	}
	var we writeErr
	switch {
	case err == nil, errors.Is(err, errClosed):
	case errors.Is(err, errReplayWait):
		c.close(CloseTryAgainLater, "try again later: server busy, reconnect with backoff", "replay_wait")
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
