package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server-Sent Events: GET /v1/sse?token=JWT&after=SEQ.
//
// An SSE stream is a connection like a WebSocket (conn.go): registered in
// the hub before its replay, with the same replay, seam, gap fill,
// position checks, seq-conflict handling, bounded queue and close codes.
// Only the sink differs: frames are rendered as events (appendSSE), the
// ping is a comment, the close is an event followed by the end of the
// response. There is no reader: the request's goroutine (ServeHTTP's)
// stays in the handler for the stream's life, waits for the end and tears
// the connection down; the client going away cancels the request's
// context, which closes the connection.

// SSERetry is the reconnection delay the stream advises (its retry: line).
const SSERetry = 3 * time.Second

// errStreamEnded: the SSE response is over (client gone or dropped).
var errStreamEnded = errors.New("sse stream ended")

// SSE is the handler of GET /v1/sse. Errors before the stream starts are
// JSON, as for the WebSocket handshake: 401 (token), 403 (origin), 400
// (after or Last-Event-ID), 429 (the user's connections, WebSocket and SSE
// together, at MaxConnsPerUser), 503 with Retry-After (upgrade bucket,
// replay backlog, shutdown). The Last-Event-ID header, which EventSource
// sends when it reconnects, wins over ?after=.
func (g *Gateway) SSE() http.Handler { return http.HandlerFunc(g.serveSSE) }

func (g *Gateway) serveSSE(w http.ResponseWriter, r *http.Request) {
	hs, ok := g.admitStream(w, r, "use GET (an EventSource)", sseAfter)
	if !ok {
		return
	}
	defer g.wg.Done()
	user, expires, after, hasAfter := hs.user, hs.expires, hs.after, hs.hasAfter

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if o := r.Header.Get("Origin"); o != "" {
		// Allowed above; EventSource from another origin needs it echoed.
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", o)
	}
	w.WriteHeader(http.StatusOK)
	// net/http reads the connection without a deadline once the request
	// is in (a client that goes away cancels r's context); the write
	// deadline is set per write by the sink, past the server's WriteTimeout.
	s := &sseSink{w: w, rc: rc, timeout: g.cfg.WriteTimeout, done: make(chan struct{})}
	if err := s.write(fmt.Appendf(nil, "retry: %d\n\n", SSERetry.Milliseconds())); err != nil {
		return
	}

	c := &conn{g: g, out: s, user: user, expires: expires, replaying: true, writing: true, lastSeq: after, live: hs.live}
	first, load, err := g.hub.add(c, &g.closing, g.cfg.MaxConnsPerUser, g.newFrameLimiter)
	if err != nil {
		// Lost a race with Shutdown or with the user's other handshakes.
		code, reason := CloseRestarting, "server restarting"
		if errors.Is(err, errTooManyConns) {
			code, reason = CloseTooManyConns, "too many connections for this user"
		}
		s.close(code, reason)
		s.end()
		return
	}
	if first && g.cfg.Presence != nil {
		g.cfg.Presence.UserOnline(user)
	}
	if load != nil {
		g.loadTopics(user, load)
	}
	g.conns.Add(1)
	g.m.sse.Inc()
	g.log.Debug("sse connected", "user", user, "after", after, "has_after", hasAfter, "remote", r.RemoteAddr)

	// The client going away (or the server ending the request) closes the
	// connection; AfterFunc's goroutine only flips flags.
	stop := context.AfterFunc(r.Context(), func() {
		c.close(0, "", "client_gone")
		s.drop()
	})
	// The replay and its store calls are bounded by the gateway's context
	// (Shutdown) and StoreTimeout, like the WebSocket's.
	c.replay(after, hasAfter) //nolint:contextcheck // gateway-owned, see above
	<-s.done
	stop()
	s.end()
	c.teardownSSE()
}

// sseAfter is the stream's starting point: Last-Event-ID if sent, else
// ?after= (queryAfter).
func sseAfter(r *http.Request) (after uint64, has bool, err error) {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if after, err = parseSeq(v); err != nil {
			return 0, false, fmt.Errorf("Last-Event-ID must be a non-negative integer seq, got %q", v)
		}
		return after, true, nil
	}
	return queryAfter(r)
}

// parseSeq parses a seq: decimal digits only (no sign, no spaces), at
// most 2^64-1.
func parseSeq(s string) (uint64, error) {
	return strconv.ParseUint(s, 10, 64)
}

// teardownSSE releases an SSE connection once its response is over; only
// its handler calls it, once.
func (c *conn) teardownSSE() {
	c.release(c.g.m.sse, "sse disconnected")
}

// sseSink writes a connection's frames to an SSE response.
//
// Writes (frame, ping, close) come from the write side's owner, one at a
// time, under mu; after end (the handler is about to return) none
// touches the response again. drop may come from anywhere: it makes the
// write in flight fail (a deadline of now) and ends the wait in the
// handler, under dmu so that it never touches a response whose handler
// has returned (its connection may carry the next request).
type sseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	done    chan struct{} // closed by finish: the handler ends the response
	once    sync.Once
	dropped atomic.Bool

	mu    sync.Mutex // held by every write
	ended bool
	buf   []byte

	dmu    sync.Mutex // orders drop's deadline against end
	dended bool
}

// maxKeptBuf is the largest render buffer a stream keeps between writes.
const maxKeptBuf = 8 << 10

func (s *sseSink) frame(f []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := appendSSE(s.buf[:0], f)
	if err != nil {
		return err
	}
	err = s.writeLocked(b)
	if cap(b) <= maxKeptBuf {
		s.buf = b[:0]
	} else {
		s.buf = nil
	}
	return err
}

func (s *sseSink) ping() error { return s.write([]byte(": ping\n\n")) }

// close writes the close event and ends the stream.
func (s *sseSink) close(code int, reason string) {
	_ = s.write(appendSSEClose(nil, code, reason))
	s.finish()
}

func (s *sseSink) drop() {
	s.dropped.Store(true)
	s.dmu.Lock()
	if !s.dended {
		_ = s.rc.SetWriteDeadline(time.Now())
	}
	s.dmu.Unlock()
	s.finish()
}

func (s *sseSink) finish() { s.once.Do(func() { close(s.done) }) }

// end fences the response off: after it no write touches it.
func (s *sseSink) end() {
	s.dmu.Lock()
	s.dended = true
	s.dmu.Unlock()
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

func (s *sseSink) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(b)
}

// writeLocked writes b and flushes it, within the sink's write timeout.
func (s *sseSink) writeLocked(b []byte) error {
	if s.ended || s.dropped.Load() {
		return errStreamEnded
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if s.dropped.Load() {
		return errStreamEnded // drop's deadline may have been overwritten
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Prefixes of the WebSocket frames (frames.go) that appendSSE renders.
var (
	wsNotification = []byte(`{"type":"notification","notification":`)
	wsSynced       = []byte(`{"type":"synced",`)
	wsUnread       = []byte(`{"type":"unread",`)
	wsBroadcast    = []byte(`{"type":"broadcast","broadcast":`)
)

// appendSSE appends the SSE event of the WebSocket frame f to b:
//
//	id: <seq>\nevent: notification\ndata: <Notification JSON>\n\n
//	id: <seq>\nevent: synced\ndata: {"seq":S,"unread":N}\n\n
//	event: unread\ndata: {"count":N}\n\n
//	event: broadcast\ndata: <Broadcast JSON>\n\n
//
// The synced event carries the seq the stream is at as its id, so that
// an EventSource that reconnects before any notification resumes there
// (Last-Event-ID) rather than replaying the unread ones again. JSON has no
// raw newlines, so each data is one line.
func appendSSE(b, f []byte) ([]byte, error) {
	var event string
	var data []byte
	id := false
	switch {
	case bytes.HasPrefix(f, wsNotification) && len(f) > len(wsNotification) && f[len(f)-1] == '}':
		event, data, id = "notification", f[len(wsNotification):len(f)-1], true
	case bytes.HasPrefix(f, wsSynced):
		event, data, id = "synced", f[len(wsSynced)-1:], true
	case bytes.HasPrefix(f, wsUnread):
		event, data = "unread", f[len(wsUnread)-1:]
	case bytes.HasPrefix(f, wsBroadcast) && len(f) > len(wsBroadcast) && f[len(f)-1] == '}':
		event, data = "broadcast", f[len(wsBroadcast):len(f)-1]
	default:
		return b, fmt.Errorf("sse: unknown frame %.40q", f)
	}
	if id {
		seq, ok := seqOf(data)
		if !ok {
			return b, fmt.Errorf("sse: no seq in %s frame", event)
		}
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	if event != "notification" && event != "broadcast" {
		// {"type":"x",… with the type cut: data is `,…` preceded by '{'.
		b = append(b, '{')
		data = data[1:]
	}
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}

// seqOf finds the top-level "seq" of a JSON object rendered by
// encoding/json: inside strings a quote is escaped, so the first `"seq":`
// is a key; in a Notification it is the second one, after the id.
func seqOf(obj []byte) (uint64, bool) {
	i := bytes.Index(obj, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	rest := obj[i+len(`"seq":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return seq, err == nil
}

// appendSSEClose appends event: close with {"code":C,"reason":"…"}.
func appendSSEClose(b []byte, code int, reason string) []byte {
	data, _ := json.Marshal(struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}{code, reason})
	b = append(b, "event: close\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
