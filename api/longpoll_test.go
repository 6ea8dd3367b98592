package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/store/memory"
)

// pollFixture is an API with long polls held by a delivery.Waiters (nil:
// none) over a memory store.
type pollFixture struct {
	srv   *httptest.Server
	store *memory.Store
	w     *delivery.Waiters
}

func newPollFixture(t *testing.T, w *delivery.Waiters, wrap func(*httptest.Server)) *pollFixture {
	t.Helper()
	f := &pollFixture{store: memory.New(), w: w}
	cfg := Config{Store: f.store, Users: tokens{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if w != nil {
		cfg.Waiter = w
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(s)
	if wrap != nil {
		wrap(f.srv)
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// waiters is a standalone registry with test bounds.
func waiters(maxWaits, perUser int) *delivery.Waiters {
	return delivery.NewWaiters(delivery.WaitersConfig{MaxWaits: maxWaits, MaxWaitsPerUser: perUser,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

type page struct {
	code  int
	ns    []herald.Notification
	next  uint64
	err   string
	field string
	retry string
}

// get sends GET path as user, with a failure guard far above any wait a
// test expects to end on its own.
func (f *pollFixture) get(ctx context.Context, user, path string) (page, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer tok-"+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Notifications []herald.Notification `json:"notifications"`
		Next          uint64                `json:"next"`
		Error         string                `json:"error"`
		Field         string                `json:"field"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, err
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return page{}, fmt.Errorf("decode %q: %w", raw, err)
	}
	return page{resp.StatusCode, body.Notifications, body.Next, body.Error, body.Field, resp.Header.Get("Retry-After")}, nil
}

func (f *pollFixture) mustGet(t *testing.T, user, path string) page {
	t.Helper()
	p, err := f.get(context.Background(), user, path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// poll runs a GET in the background.
func (f *pollFixture) poll(ctx context.Context, user, path string) <-chan page {
	out := make(chan page, 1)
	go func() {
		p, err := f.get(ctx, user, path)
		if err != nil {
			p.err = err.Error()
		}
		out <- p
	}()
	return out
}

func (f *pollFixture) add(t *testing.T, user string, n int) []herald.Notification {
	t.Helper()
	w, err := f.store.Fence(context.Background(), "test/"+herald.NewID(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	ns := make([]herald.Notification, n)
	for i := range ns {
		e := herald.Event{ID: herald.NewID(time.Now()), UserID: user, Type: "t", Priority: herald.PriorityNormal, CreatedAt: time.Now()}
		ns[i] = herald.NewNotification(&e)
	}
	res, err := w.Append(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		ns[i] = res[i].Notification
	}
	return ns
}

func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLongPollWaitValidated(t *testing.T) {
	for _, w := range []*delivery.Waiters{nil, waiters(0, 0)} {
		f := newPollFixture(t, w, nil)
		for _, q := range []string{"61", "-1", "x", "1.5", "1s", "%201", "%2B1"} {
			p := f.mustGet(t, "u1", "/v1/notifications?wait="+q)
			if p.code != 400 || p.field != "wait" || p.err == "" {
				t.Errorf("waiter %v, wait=%q: %+v, want 400 field wait", w != nil, q, p)
			}
		}
	}
}

// Without a Waiter a valid wait is answered at once.
func TestLongPollWithoutWaiterAnswersNow(t *testing.T) {
	f := newPollFixture(t, nil, nil)
	if p := f.mustGet(t, "u1", "/v1/notifications?wait=60"); p.code != 200 || len(p.ns) != 0 {
		t.Fatalf("%+v", p)
	}
}

// Data after `after` is answered without waiting.
func TestLongPollAnswersAtOnceWhenDataExists(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), nil)
	f.add(t, "u1", 3)
	p := f.mustGet(t, "u1", "/v1/notifications?after=1&wait=60")
	if p.code != 200 || len(p.ns) != 2 || p.ns[0].Seq != 2 || p.next != 3 {
		t.Fatalf("%+v", p)
	}
	if n := f.w.Waiting(); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
}

// A waiting request is woken by the notification itself, not by the end of
// its (long) wait; notifications of others or at or below after do not wake it.
func TestLongPollWokenByDeliver(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), nil)
	old := f.add(t, "u1", 1)
	got := f.poll(context.Background(), "u1", "/v1/notifications?after=1&wait=60")
	pollUntil(t, "the request to wait", func() bool { return f.w.Waiting() == 1 && f.w.Present("u1") })
	ctx := context.Background()
	if online, _ := f.w.Deliver(ctx, "u1", old[0]); online {
		t.Fatal("woken by a seq at after")
	}
	if online, _ := f.w.Deliver(ctx, "u2", f.add(t, "u2", 3)[2]); online {
		t.Fatal("woken by another user's notification")
	}
	n := f.add(t, "u1", 1)[0]
	if online, _ := f.w.Deliver(ctx, "u1", n); !online {
		t.Fatal("Deliver did not find the waiting request")
	}
	p := <-got
	if p.code != 200 || len(p.ns) != 1 || p.ns[0].Seq != 2 || p.next != 2 {
		t.Fatalf("%+v", p)
	}
	pollUntil(t, "the waiter released", func() bool { return f.w.Waiting() == 0 && !f.w.Present("u1") })
}

// The wait ends with an empty page.
func TestLongPollTimeoutEmpty(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), nil)
	f.add(t, "u1", 2)
	p := f.mustGet(t, "u1", "/v1/notifications?after=2&wait=1")
	if p.code != 200 || len(p.ns) != 0 || p.next != 2 {
		t.Fatalf("%+v", p)
	}
}

// A client that goes away ends its wait.
func TestLongPollClientGone(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), nil)
	ctx, cancel := context.WithCancel(context.Background())
	got := f.poll(ctx, "u1", "/v1/notifications?wait=60")
	pollUntil(t, "the request to wait", func() bool { return f.w.Waiting() == 1 })
	cancel()
	if p := <-got; p.err == "" {
		t.Fatalf("cancelled request answered: %+v", p)
	}
	pollUntil(t, "the wait to end", func() bool { return f.w.Waiting() == 0 && !f.w.Present("u1") })
}

// Past the process's cap: 503 with Retry-After; past the user's: 429.
func TestLongPollCaps(t *testing.T) {
	f := newPollFixture(t, waiters(2, 1), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.poll(ctx, "u1", "/v1/notifications?wait=60")
	pollUntil(t, "u1 to wait", func() bool { return f.w.Waiting() == 1 })
	if p := f.mustGet(t, "u1", "/v1/notifications?wait=60"); p.code != 429 || p.retry == "" || p.err == "" {
		t.Fatalf("second wait of u1: %+v, want 429 with Retry-After", p)
	}
	f.poll(ctx, "u2", "/v1/notifications?wait=60")
	pollUntil(t, "u2 to wait", func() bool { return f.w.Waiting() == 2 })
	if p := f.mustGet(t, "u3", "/v1/notifications?wait=60"); p.code != 503 || p.retry == "" || p.err == "" {
		t.Fatalf("third wait: %+v, want 503 with Retry-After", p)
	}
	if p := f.mustGet(t, "u3", "/v1/notifications?wait=0"); p.code != 200 {
		t.Fatalf("wait=0 past the cap: %+v", p)
	}
}

// Shutdown answers the waiting requests at once, and later ones without
// waiting.
func TestLongPollShutdownAnswers(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), nil)
	got := f.poll(context.Background(), "u1", "/v1/notifications?wait=60")
	pollUntil(t, "the request to wait", func() bool { return f.w.Waiting() == 1 })
	f.w.Shutdown()
	if p := <-got; p.code != 200 || len(p.ns) != 0 {
		t.Fatalf("%+v", p)
	}
	if p := f.mustGet(t, "u1", "/v1/notifications?wait=60"); p.code != 200 {
		t.Fatalf("after Shutdown: %+v", p)
	}
}

// The server's read and write timeouts, counted from the request, do not
// cut a wait that outlasts them.
func TestLongPollOutlastsServerTimeouts(t *testing.T) {
	f := newPollFixture(t, waiters(0, 0), func(s *httptest.Server) {
		s.Config.ReadTimeout, s.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	p, err := f.get(context.Background(), "u1", "/v1/notifications?wait=1")
	if err != nil {
		t.Fatalf("the wait was cut: %v", err)
	}
	if p.code != 200 || len(p.ns) != 0 {
		t.Fatalf("%+v", p)
	}
}
