package delivery

import (
	"fmt"
	"net/http"

	"github.com/heraldhq/herald/auth"
)

// handshake is what an admitted stream request (WebSocket or SSE)
// carried.
type handshake struct {
	user     string
	expires  int64 // the token's end, Unix nanoseconds; 0: none
	after    uint64
	hasAfter bool
	live     bool // ?broadcasts=live: send live broadcasts (broadcast.go)
}

// admitStream runs the checks a WebSocket upgrade and an SSE stream share,
// in this order, answering the first that fails with its JSON error: the
// method (405, with use as the message), shutdown (503), the token (401),
// the origin (403), the starting seq as after reads it and ?broadcasts
// (400), the user's
// connections (429) and the upgrade bucket and replay backlog (503 with
// Retry-After). On success the request counts in the gateway's WaitGroup
// until the caller's g.wg.Done, which Shutdown waits for.
func (g *Gateway) admitStream(w http.ResponseWriter, r *http.Request, use string, after func(*http.Request) (uint64, bool, error)) (hs handshake, ok bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, use)
		return hs, false
	}
	g.mu.Lock()
	if g.closing.Load() {
		g.mu.Unlock()
		g.m.refused.WithLabelValues(refusedShutdown).Inc()
		writeError(w, http.StatusServiceUnavailable, "server is shutting down, retry later")
		return hs, false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	defer func() {
		if !ok {
			g.wg.Done()
		}
	}()

	var err error
	if hs.user, hs.expires, err = g.verify(auth.BearerToken(r)); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		writeError(w, http.StatusUnauthorized, err.Error())
		return hs, false
	}
	if !g.originAllowed(r) {
		writeError(w, http.StatusForbidden, "origin not allowed")
		return hs, false
	}
	if hs.after, hs.hasAfter, err = after(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return hs, false
	}
	if hs.live, err = queryBroadcasts(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return hs, false
	}
	if g.hub.count(hs.user) >= g.cfg.MaxConnsPerUser {
		g.m.refused.WithLabelValues(refusedUserCap).Inc()
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("more than %d connections for this user", g.cfg.MaxConnsPerUser))
		return hs, false
	}
	if admitted, retryAfter, why := g.adm.admit(); !admitted {
		g.m.refused.WithLabelValues(why).Inc()
		refuseUpgrade(w, retryAfter)
		return hs, false
	}
	return hs, true
}

// queryAfter is a WebSocket's starting point: ?after=.
func queryAfter(r *http.Request) (after uint64, has bool, err error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, false, nil
	}
	if after, err = parseSeq(v); err != nil {
		return 0, false, fmt.Errorf("after must be a non-negative integer seq, got %q", v)
	}
	return after, true, nil
}

// queryBroadcasts reads ?broadcasts=: "live" asks for live broadcasts,
// "inbox" (or nothing) for broadcasts only as inbox notifications.
func queryBroadcasts(r *http.Request) (live bool, err error) {
	switch v := r.URL.Query().Get("broadcasts"); v {
	case "", "inbox":
		return false, nil
	case "live":
		return true, nil
	default:
		return false, fmt.Errorf("broadcasts must be live or inbox, got %.64q", v)
	}
}
