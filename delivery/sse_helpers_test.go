package delivery

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

// sseEvent is one dispatched SSE block: an event, or a comment.
type sseEvent struct {
	id, event, data, comment, retry string
}

// sseStream reads the events of one GET /v1/sse response.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
	errc   chan error // the body's end (io.EOF) or failure
}

// trySSE opens a stream as user with an extra query and headers; the
// response is returned as is when it is not a 200.
func (e *env) trySSE(user, query string, hdr http.Header) (*sseStream, *http.Response) {
	e.t.Helper()
	u := e.srv.URL + "/v1/sse?token=" + token(e.t, user)
	if query != "" {
		u += "&" + query
	}
	s, resp := e.openSSE(u, hdr)
	if s != nil {
		s.start()
	}
	return s, resp
}

func (e *env) openSSE(u string, hdr http.Header) (*sseStream, *http.Response) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	s := &sseStream{t: e.t, resp: resp, events: make(chan sseEvent, 1024), errc: make(chan error, 1)}
	e.t.Cleanup(func() { _ = resp.Body.Close() })
	return s, resp
}

// start begins reading the body (sse and trySSE start at once).
func (s *sseStream) start() *sseStream {
	go s.readLoop()
	return s
}

// sse opens a stream and fails the test unless it starts.
func (e *env) sse(user, query string, hdr http.Header) *sseStream {
	e.t.Helper()
	s, resp := e.trySSE(user, query, hdr)
	if s == nil {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		e.t.Fatalf("sse %s?%s: %d %s", user, query, resp.StatusCode, b)
		return nil
	}
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	return s
}

func (s *sseStream) readLoop() {
	br := bufio.NewReader(s.resp.Body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.errc <- err
			close(s.events)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			s.events <- ev
			ev = sseEvent{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = value
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			ev.data = value
		case "retry":
			ev.retry = value
		default:
			s.events <- sseEvent{event: "bad field " + field}
		}
	}
}

// next is the next block, comments included; ok is false at the end of
// the stream.
func (s *sseStream) next() (sseEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(15 * time.Second):
		s.t.Fatal("timed out waiting for an SSE event")
		return sseEvent{}, false
	}
}

// frame is the next event (comments and retry skipped) as a frame; the
// close event is a frame of type "close" with the code in Seq.
func (s *sseStream) frame() (frame, bool) {
	s.t.Helper()
	for {
		ev, ok := s.next()
		if !ok {
			return frame{}, false
		}
		if ev.event == "" {
			continue
		}
		f, err := decodeSSE(ev)
		if err != nil {
			s.t.Fatal(err)
		}
		return f, true
	}
}

func decodeSSE(ev sseEvent) (frame, error) {
	f := frame{Type: ev.event}
	switch ev.event {
	case "notification":
		var n herald.Notification
		if err := json.Unmarshal([]byte(ev.data), &n); err != nil {
			return f, fmt.Errorf("notification data %q: %w", ev.data, err)
		}
		if ev.id != fmt.Sprint(n.Seq) {
			return f, fmt.Errorf("notification %d has id %q", n.Seq, ev.id)
		}
		f.Notification = &n
	case "synced":
		if err := json.Unmarshal([]byte(ev.data), &f); err != nil {
			return f, fmt.Errorf("synced data %q: %w", ev.data, err)
		}
		if ev.id != fmt.Sprint(f.Seq) {
			return f, fmt.Errorf("synced %d has id %q", f.Seq, ev.id)
		}
	case "unread":
		if err := json.Unmarshal([]byte(ev.data), &f); err != nil {
			return f, fmt.Errorf("unread data %q: %w", ev.data, err)
		}
	case "broadcast":
		var b herald.Broadcast
		if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
			return f, fmt.Errorf("broadcast data %q: %w", ev.data, err)
		}
		if ev.id != "" {
			return f, fmt.Errorf("broadcast %s has id %q", b.EventID, ev.id)
		}
		f.Broadcast = &b
	case "close":
		var c struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil || c.Reason == "" {
			return f, fmt.Errorf("close data %q: %w", ev.data, err)
		}
		f.Seq = uint64(c.Code)
	default:
		return f, fmt.Errorf("unexpected event %+v", ev)
	}
	f.Type = ev.event
	return f, nil
}

func (s *sseStream) mustFrame() frame {
	s.t.Helper()
	f, ok := s.frame()
	if !ok {
		s.t.Fatalf("stream ended: %v", <-s.errc)
	}
	return f
}

// untilSynced reads the replay and returns its seqs and the synced frame.
func (s *sseStream) untilSynced() ([]uint64, frame) {
	s.t.Helper()
	var seqs []uint64
	for {
		f := s.mustFrame()
		switch f.Type {
		case "notification":
			seqs = append(seqs, f.Notification.Seq)
		case "synced":
			return seqs, f
		default:
			s.t.Fatalf("unexpected %v during replay", f)
		}
	}
}

// seqs reads n notification events.
func (s *sseStream) seqs(n int) []uint64 {
	s.t.Helper()
	var out []uint64
	for len(out) < n {
		f := s.mustFrame()
		if f.Type != "notification" {
			s.t.Fatalf("got %v while waiting for notifications (have %v)", f, out)
		}
		out = append(out, f.Notification.Seq)
	}
	return out
}

// closeCode reads until the close event, checks that the response ends
// after it, and returns its code.
func (s *sseStream) closeCode() int {
	s.t.Helper()
	for {
		f, ok := s.frame()
		if !ok {
			s.t.Fatalf("stream ended without a close event: %v", <-s.errc)
		}
		if f.Type != "close" {
			continue
		}
		if _, more := s.frame(); more {
			s.t.Fatal("events after the close event")
		}
		if err := <-s.errc; !errors.Is(err, io.EOF) {
			s.t.Fatalf("stream after the close event: %v, want its end", err)
		}
		return int(f.Seq)
	}
}
