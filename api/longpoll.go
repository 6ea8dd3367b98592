package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	herald "github.com/heraldhq/herald"
)

// Long poll: GET /v1/notifications?after=SEQ&wait=SECONDS.
//
// The request registers with the Waiter, checks the inbox once (something
// may have been stored before the registration), and unless that found a
// notification after SEQ waits until the Waiter wakes it (the router
// delivered one of the user's notifications here), the wait ends, the
// client goes away or the server shuts down. Then it reads its page from
// the inbox and answers as a plain GET does, possibly with an empty list.
// Nothing polls the store in a loop.

// MaxWait is the longest ?wait= of GET /v1/notifications, in seconds.
const MaxWait = 60

// DefaultWaitWriteTimeout is the default of Config.WaitWriteTimeout.
const DefaultWaitWriteTimeout = 30 * time.Second

// Waiter holds long polls; *delivery.Gateway and *delivery.Waiters
// implement it.
type Waiter interface {
	// Wait registers a wait of userID for a notification with a seq above
	// after, calls ready (which checks the inbox once and reports whether
	// the request can be answered now), and unless it can, blocks until
	// such a notification is delivered, ctx ends or the Waiter shuts down.
	// An error refuses the long poll before it waits; one with an
	// HTTPStatus() int method gives the status (503 or 429, answered with
	// Retry-After: 1), any other is a 503.
	Wait(ctx context.Context, userID string, after uint64, ready func() bool) error
}

// parseWait parses ?wait=: whole seconds from 0 to MaxWait, in decimal
// digits; "" is 0.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 8) // digits only: no sign, no spaces
	if err != nil || n > MaxWait {
		return 0, fmt.Errorf("wait must be an integer number of seconds from 0 to %d", MaxWait)
	}
	return time.Duration(n) * time.Second, nil
}

// longPoll waits (see above) and returns the page to answer with; answer
// is false when the response was written already (a refusal) or nobody
// is there to read it (the client went away).
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, uid string, after uint64, wait time.Duration,
	list func(ctx context.Context) ([]herald.Notification, error)) (ns []herald.Notification, answer bool, err error) {
	// net/http reads the connection without a deadline once the request
	// is in (to notice a client that goes away, which cancels r's
	// context), so only the write deadline needs care, below.
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	found := false
	werr := s.cfg.Waiter.Wait(ctx, uid, after, func() bool {
		ns, err = list(ctx)
		found = len(ns) > 0 || (err != nil && ctx.Err() == nil)
		return found
	})
	if werr != nil {
		refuseWait(w, werr)
		return nil, false, nil
	}
	if r.Context().Err() != nil {
		return nil, false, nil // the client went away
	}
	if !found { // woken, or the wait is over: read the page now
		ns, err = list(r.Context())
	}
	// The server's WriteTimeout counts from the request: the wait may
	// have outlasted it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WaitWriteTimeout))
	return ns, true, err
}

// refuseWait answers a long poll the Waiter refused.
func refuseWait(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	var se interface{ HTTPStatus() int }
	if errors.As(err, &se) {
		status = se.HTTPStatus()
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, status, "", err.Error())
}
