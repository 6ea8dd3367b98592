package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store/memory"
)

// blockingSink is Kafka in an outage: SendEvents blocks until its context
// ends. entered receives once per call.
type blockingSink struct {
	EventSink
	entered chan struct{}
}

func (b *blockingSink) SendEvents(ctx context.Context, _ []herald.Event) error {
	b.entered <- struct{}{}
	<-ctx.Done()
	return fmt.Errorf("produce: %w", ctx.Err())
}

// countingSink accepts everything and counts the events.
type countingSink struct {
	EventSink
	mu sync.Mutex
	n  int
}

func (c *countingSink) SendEvents(_ context.Context, evs []herald.Event) error {
	c.mu.Lock()
	c.n += len(evs)
	c.mu.Unlock()
	return nil
}

func hardServer(t *testing.T, cfg Config) *fixture {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = memory.New()
	}
	cfg.Users, cfg.Keys = tokens{}, keys{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv}
}

// post sends body (with its length unless chunked) and returns the reply.
func post(t *testing.T, ctx context.Context, base, path, auth, body string, chunked bool) (reply, error) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: Transfer-Encoding: chunked
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, raw}, nil
}

func batch(n int) string {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"e%d","user_id":"u1","type":"t"}`, i)
	}
	b.WriteString("]}")
	return b.String()
}

// Defect 1: with Kafka not answering, POST /v1/events is a 503 with
// Retry-After once the produce deadline passes, not a hang.
func TestProduceDeadline(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}, 1)}
	f := hardServer(t, Config{Events: sink, ProduceTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a bound, not an assertion
	defer cancel()
	r, err := post(t, ctx, f.srv.URL, "/v1/events", "key-1", batch(3), false)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After=%q: %s", r.code, r.header.Get("Retry-After"), r.raw)
	}
	if !strings.Contains(string(r.raw), "retry the whole request with the same event ids") {
		t.Fatalf("error does not say a retry is safe: %s", r.raw)
	}
}

// Defect 1: bodies held by intake are bounded; past the bound, 503.
func TestIntakeInflightBound(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}, 4)}
	first := batch(40) // ~1.6 KiB
	f := hardServer(t, Config{Events: sink, ProduceTimeout: time.Minute, MaxInflightBytes: int64(len(first)) + 500})
	s := f.srv.Config.Handler.(*Server)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = post(t, ctx, f.srv.URL, "/v1/events", "key-1", first, false)
	}()
	<-sink.entered // the first request holds its bytes inside the sink

	bound, bcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer bcancel()
	for _, chunked := range []bool{false, true} {
		r, err := post(t, bound, f.srv.URL, "/v1/events", "key-1", batch(20), chunked)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.raw), "in-flight") {
			t.Fatalf("chunked=%v: got %d Retry-After=%q: %s", chunked, r.code, r.header.Get("Retry-After"), r.raw)
		}
	}
	if got := s.intake.inUse(); got != int64(len(first)) {
		t.Fatalf("refused requests kept bytes: %d in use, want %d", got, len(first))
	}
	cancel() // the client gives up: its bytes come back
	<-done
	for s.intake.inUse() != 0 {
		if bound.Err() != nil {
			t.Fatalf("bytes never released: %d", s.intake.inUse())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Defect 3: every event of a batch is charged; a batch over the burst is
// 413, one that fits later is 429 with a Retry-After saying when.
func TestBatchRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sink := &countingSink{}
	f := hardServer(t, Config{Events: sink, EventsPerKey: Limit{Rate: 10, Burst: 20}, Now: clock})
	ctx := context.Background()

	r, err := post(t, ctx, f.srv.URL, "/v1/events", "key-1", batch(500), false)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 413 || !strings.Contains(string(r.raw), `"field":"events"`) {
		t.Fatalf("500-event batch: %d %s", r.code, r.raw)
	}
	if r, _ := post(t, ctx, f.srv.URL, "/v1/events", "key-1", batch(21), false); r.code != 413 {
		t.Fatalf("21-event batch over a burst of 20: %d %s", r.code, r.raw)
	}
	// Batches of 5 for 10 fake seconds: the burst, then 10 events a second.
	const seconds = 10
	for sec := range seconds {
		for {
			r, err := post(t, ctx, f.srv.URL, "/v1/events", "key-1", batch(5), false)
			if err != nil {
				t.Fatal(err)
			}
			if r.code == 429 {
				if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 {
					t.Fatalf("429 without a Retry-After: %v", r.header)
				}
				break
			}
			if r.code != 202 {
				t.Fatalf("second %d: %d %s", sec, r.code, r.raw)
			}
		}
		mu.Lock()
		now = now.Add(time.Second)
		mu.Unlock()
	}
	sink.mu.Lock()
	got := sink.n
	sink.mu.Unlock()
	if want := 20 + 10*(seconds-1); got != want {
		t.Fatalf("%d events accepted in %d s at 10/s (burst 20), want %d", got, seconds, want)
	}
	// The bucket now holds 10: 15 events fit in 0.5 s, so Retry-After 1.
	r, _ = post(t, ctx, f.srv.URL, "/v1/events", "key-1", batch(15), false)
	if r.code != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("15 events with 10 tokens: %d Retry-After=%q", r.code, r.header.Get("Retry-After"))
	}
}

// Defects 7, 11 and 8: one strict decoder on every body route; errors
// name the field; read is validated like the WebSocket's.
func TestStrictBodies(t *testing.T) {
	f := hardServer(t, Config{Events: &countingSink{}})
	cases := []struct {
		method, path, body string
		field, msg         string
	}{
		{"POST", "/v1/devices", `{"platform":"ios","token":"t","app_id":"a"}}`, "", "trailing data"},
		{"POST", "/v1/devices", `{"platform":"ios","token":"t","app_id":"a"} {}`, "", "trailing data"},
		{"POST", "/v1/devices", `{"platform":"ios","token":"t","app_id":"a"}]`, "", "trailing data"},
		{"PUT", "/v1/preferences", `{}}`, "", "trailing data"},
		{"POST", "/v1/notifications/read", `{"all":true}x`, "", "trailing data"},
		{"POST", "/v1/devices", `{"platform":"ios","token":"t","name":"phone"}`, "name", "unknown field"},
		{"POST", "/v1/devices", `{"platform":"ios","token":5}`, "token", "must be a string"},
		{"POST", "/v1/notifications/read", `{"seqs":"1"}`, "seqs", "must be an array"},
		{"POST", "/v1/notifications/read", `{"all":"yes"}`, "all", "true or false"},
		{"POST", "/v1/devices", `{"platform":é}`, "", `'é'`},
		{"POST", "/v1/devices", `[]`, "", "must be a JSON object"},
		{"POST", "/v1/devices", `null`, "", "must be a JSON object"},
		{"POST", "/v1/devices", ``, "", "empty body"},
		{"POST", "/v1/devices", `{"platform":"ios",`, "", "unexpected end"},
		{"POST", "/v1/notifications/read", `{"all":true,"seqs":[1]}`, "seqs", "not both"},
		{"POST", "/v1/notifications/read", `{"seqs":[0]}`, "seqs[0]", "start at 1"},
		{"POST", "/v1/notifications/read", `{"seqs":[]}`, "seqs", "non-empty"},
		{"POST", "/v1/notifications/read", `{"all":false}`, "seqs", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			code, body := f.do(t, c.method, c.path, "tok-u1", c.body)
			msg, _ := body["error"].(string)
			field, _ := body["field"].(string)
			if code != 400 || field != c.field || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %d field %q error %q; want 400 field %q error containing %q", code, field, msg, c.field, c.msg)
			}
		})
	}
	// What is valid still passes.
	if code, body := f.do(t, "POST", "/v1/devices", "tok-u1", " {\"platform\":\"ios\",\"token\":\"t\",\"app_id\":\"a\"}\n\t "); code != 201 {
		t.Fatalf("valid device with whitespace: %d %v", code, body)
	}
}

// Defect 11: 401s carry WWW-Authenticate; the mux's redirect of a
// non-canonical path is JSON. net/http's own 400 (unparsable request
// line) and 431 (headers over MaxHeaderBytes) are answered before any
// handler: only their status is ours to check.
func TestErrorShape(t *testing.T) {
	addr, _ := served(t, apiServer(t, nil), HTTPConfig{})
	base := "http://" + addr
	for _, c := range []struct{ method, path, auth, want string }{
		{"GET", "/v1/notifications", "", `Bearer realm="herald"`},
		{"GET", "/v1/notifications", "garbage", `Bearer realm="herald", error="invalid_token"`},
		{"POST", "/v1/events", "", `Bearer realm="herald"`},
		{"POST", "/v1/events", "wrong", `Bearer realm="herald", error="invalid_token"`},
	} {
		r := call(t, base, c.method, c.path, c.auth, "{}")
		if r.code != 401 || r.header.Get("WWW-Authenticate") != c.want {
			t.Fatalf("%s %s %q: %d WWW-Authenticate=%q", c.method, c.path, c.auth, r.code, r.header.Get("WWW-Authenticate"))
		}
	}
	for _, raw := range []struct {
		req  string
		code int
		json bool
	}{
		{"GET /v1/../healthz HTTP/1.1\r\nHost: x\r\n\r\n", 307, true},
		{"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, false},
	} {
		conn := dial(t, addr)
		if _, err := io.WriteString(conn, raw.req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		var body errorBody
		jerr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != raw.code || raw.json && (jerr != nil || body.Error == "" || resp.Header.Get("Location") != "/healthz") {
			t.Fatalf("%.40q: %d %v %+v %v", raw.req, resp.StatusCode, resp.Header, body, jerr)
		}
	}
}

// Defects 4, 9 and 10 through the intake: the event decoder's refusals
// reach the caller as 400s naming the field, and nothing is produced.
func TestIntakeRefusesHostileEvents(t *testing.T) {
	sink := &countingSink{}
	f := hardServer(t, Config{Events: sink})
	deep := `{"id":"d","user_id":"u1","type":"t","data":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`
	cases := []struct{ name, body, field string }{
		{"repeated user_id", `{"id":"e1","user_id":"u1","type":"t","user_id":"u2"}`, "user_id"},
		{"invalid UTF-8", "{\"id\":\"e1\",\"user_id\":\"u1\",\"type\":\"t\",\"title\":\"\xff\"}", "title"},
		{"ttl as a string", `{"id":"e1","user_id":"u1","type":"t","ttl":"10"}`, "ttl"},
		{"ttl of 300 years", `{"id":"e1","user_id":"u1","type":"t","ttl":9467280000}`, "ttl"},
		{"data 40 deep", deep, "data"},
		{"in a batch", `{"events":[{"id":"ok","user_id":"u1","type":"t"},` + deep + `]}`, "events[1].data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.do(t, "POST", "/v1/events", "key-1", c.body)
			if field, _ := body["field"].(string); code != 400 || field != c.field {
				t.Fatalf("got %d %v; want 400 naming %q", code, body, c.field)
			}
		})
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.n != 0 {
		t.Fatalf("%d events produced, want none", sink.n)
	}
}
