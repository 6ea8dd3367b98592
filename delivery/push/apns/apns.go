package apns

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/delivery/push"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// Config configures a Sender for one app.
type Config struct {
	// App holds the credentials, topic and endpoint. Required.
	App push.APNsApp
	// Conns is the number of HTTP/2 connections (apns2 clients); 0 means 2.
	Conns int
	// MaxInFlight bounds the requests in flight across the connections; 0
	// means 256.
	MaxInFlight int
	// Timeout bounds one request, answer included; 0 means 10s.
	Timeout time.Duration
	// Now is the clock for expiries; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultConns       = 2
	DefaultMaxInFlight = 256
	DefaultTimeout     = 10 * time.Second
)

// Sender sends pushes to APNs for one app. It is safe for concurrent use.
type Sender struct {
	clients []*apns2.Client
	next    atomic.Uint64
	jobs    chan job
	closed  chan struct{}
	once    sync.Once
	tok     *token.Token
	topic   string
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
}

var _ push.Sender = (*Sender)(nil)

// Host returns the base URL for an APNsApp.Endpoint value.
func Host(endpoint string) string {
	switch endpoint {
	case "", push.APNsProduction:
		return apns2.HostProduction
	case push.APNsSandbox:
		return apns2.HostDevelopment
	}
	return strings.TrimRight(endpoint, "/")
}

// New builds a Sender: it reads the key and CA, signs a first provider
// token (so a bad key fails here, not at the first push) and prepares the
// connections, which are dialled on first use.
func New(cfg Config) (*Sender, error) {
	a := cfg.App
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("apns.%w", err)
	}
	var key []byte
	var err error
	if len(a.Key) > 0 {
		key = a.Key
	} else if key, err = os.ReadFile(a.KeyFile); err != nil {
		return nil, fmt.Errorf("apns.key_file: %w", err)
	}
	authKey, err := token.AuthKeyFromBytes(key)
	if err != nil {
		return nil, fmt.Errorf("apns.key_file: %w", err)
	}
	roots, err := push.RootCAs(a.CAFile, a.CA)
	if err != nil {
		return nil, fmt.Errorf("apns.ca_file: %w", err)
	}
	tok := &token.Token{AuthKey: authKey, KeyID: a.KeyID, TeamID: a.TeamID}
	if _, err := tok.Generate(); err != nil {
		return nil, fmt.Errorf("apns.key_file: signing a provider token: %w", err)
	}
	s := &Sender{
		tok:     tok,
		topic:   a.Topic,
		timeout: cmpOr(cfg.Timeout, DefaultTimeout),
		jobs:    make(chan job),
		closed:  make(chan struct{}),
		now:     cfg.Now,
		log:     cfg.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	host := Host(a.Endpoint)
	for range cmpOr(cfg.Conns, DefaultConns) {
		// One transport per client: one HTTP/2 connection each (more
		// only if Apple's stream limit is reached), HTTP/2 only, as APNs
		// requires.
		// x/net's HTTP/2 transport, deprecated in favour of net/http's,
		// is what apns2 itself builds, and measured about three times
		// the pushes/s of net/http's HTTP/2 client in BenchmarkAPNsSend
		// on this workload.
		t := &http2.Transport{ //nolint:staticcheck // see above
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ReadIdleTimeout: apns2.ReadIdleTimeout,
			PingTimeout:     5 * time.Second,
		}
		s.clients = append(s.clients, &apns2.Client{
			Host:       host,
			Token:      tok,
			HTTPClient: &http.Client{Transport: captureTransport{t}},
		})
	}
	for range cmpOr(cfg.MaxInFlight, DefaultMaxInFlight) {
		go s.work()
	}
	return s, nil
}

// Close stops the workers once their current request is answered and
// closes the idle connections. Sends after Close fail (transient).
func (s *Sender) Close() {
	s.once.Do(func() { close(s.closed) })
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
}

// Send sends msgs concurrently (at most MaxInFlight at once) and returns
// one Result per message, in order. Messages not started when ctx ends get
// a transient Result with ctx's error; after Close every message does.
func (s *Sender) Send(ctx context.Context, msgs []push.Message) []push.Result {
	out := make([]push.Result, len(msgs))
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Add(1)
		select {
		case s.jobs <- job{ctx: ctx, m: &msgs[i], out: &out[i], wg: &wg}:
			continue
		case <-ctx.Done():
		case <-s.closed:
		}
		wg.Done()
		err := ctx.Err()
		if err == nil {
			err = errClosed
		}
		for j := i; j < len(msgs); j++ {
			out[j] = push.ClassifyErr(push.ProviderAPNs, err)
		}
		break
	}
	wg.Wait()
	return out
}

// errClosed is the error of messages sent after Close.
var errClosed = errors.New("apns: sender closed")

// job is one message for a worker.
type job struct {
	ctx context.Context
	m   *push.Message
	out *push.Result
	wg  *sync.WaitGroup
}

// work runs jobs until Close. Long-lived workers (MaxInFlight of them)
// bound the requests in flight and keep their grown stacks, which a
// goroutine per message would grow again every time.
func (s *Sender) work() {
	for {
		select {
		case j := <-s.jobs:
			*j.out = s.send(j.ctx, j.m)
			j.wg.Done()
		case <-s.closed:
			return
		}
	}
}

// send sends one message, signing a fresh token and trying once more if
// APNs calls the token it was sent with expired.
func (s *Sender) send(ctx context.Context, m *push.Message) push.Result {
	n, err := Notification(s.topic, m)
	if err != nil {
		return push.ClassifyErr(push.ProviderAPNs, err)
	}
	for try := 0; ; try++ {
		if r, ok := push.CheckExpiry(push.ProviderAPNs, m, s.now()); !ok {
			return r
		}
		r, bearer := s.push(ctx, n)
		if try > 0 || r.Status != http.StatusForbidden || r.Reason != push.APNsExpiredProviderToken {
			return r
		}
		s.refresh(bearer)
	}
}

// refresh signs a new provider token unless another request already
// replaced the one used (so a burst of rejections signs once; Apple
// answers TooManyProviderTokenUpdates to frequent changes).
func (s *Sender) refresh(used string) {
	s.tok.Lock()
	defer s.tok.Unlock()
	if s.tok.Bearer != used {
		return
	}
	if _, err := s.tok.Generate(); err != nil {
		s.log.Error("apns: signing a provider token", "err", err)
	}
}

func (s *Sender) push(ctx context.Context, n *apns2.Notification) (push.Result, string) {
	c := s.clients[(s.next.Add(1)-1)%uint64(len(s.clients))]
	cp := &capture{}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, captureKey{}, cp), s.timeout)
	defer cancel()
	resp, err := c.PushWithContext(rctx, n)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("apns: no answer within %s: %w", s.timeout, err)
		}
		return push.ClassifyErr(push.ProviderAPNs, err), cp.bearer
	}
	r := push.ClassifyAPNs(resp.StatusCode, resp.Reason, push.ParseRetryAfter(cp.retryAfter, time.Now()))
	if r.Sent {
		r.MessageID = resp.ApnsID
	}
	return r, cp.bearer
}

// capture carries, from the transport back to push, what apns2.Response
// does not keep: the Retry-After header and the bearer the request used.
type capture struct {
	retryAfter string
	bearer     string
}

type captureKey struct{}

type captureTransport struct {
	base *http2.Transport //nolint:staticcheck // see New
}

// CloseIdleConnections lets apns2.Client.CloseIdleConnections reach the
// HTTP/2 transport.
func (t captureTransport) CloseIdleConnections() {
	t.base.CloseIdleConnections() //nolint:staticcheck // see New
}

func (t captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(captureKey{}).(*capture)
	if c != nil {
		c.bearer = strings.TrimPrefix(req.Header.Get("authorization"), "bearer ")
	}
	resp, err := t.base.RoundTrip(req) //nolint:staticcheck // see New
	if c != nil && resp != nil {
		c.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
