package fcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"github.com/heraldhq/herald/delivery/push"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// Scope is the OAuth2 scope the access token is asked for.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// Config configures a Sender for one app.
type Config struct {
	// App holds the service account, project and endpoint. Required.
	App push.FCMApp
	// MaxInFlight bounds the requests in flight; 0 means 256.
	MaxInFlight int
	// Timeout bounds one request, answer included; 0 means 10s.
	Timeout time.Duration
	// Now is the clock for ttls; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxInFlight = 256
	DefaultTimeout     = 10 * time.Second
)

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 64 << 10

// Sender sends pushes through FCM for one app. It is safe for concurrent
// use.
type Sender struct {
	client  *messaging.Client
	sem     chan struct{}
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	project string
}

var _ push.Sender = (*Sender)(nil)

// New builds a Sender: it reads the service account and CA and prepares
// the client; the first access token is fetched at the first send.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	a := cfg.App
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("fcm.%w", err)
	}
	creds := a.Credentials
	if len(creds) == 0 {
		b, err := os.ReadFile(a.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("fcm.credentials_file: %w", err)
		}
		creds = b
	}
	jc, err := google.JWTConfigFromJSON(creds, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm.credentials_file: %w", err)
	}
	project := a.ProjectID
	if project == "" {
		var sa struct {
			ProjectID string `json:"project_id"`
		}
		_ = json.Unmarshal(creds, &sa)
		if project = sa.ProjectID; project == "" {
			return nil, errors.New("fcm.project_id: is required (the service account has no project_id)")
		}
	}
	roots, err := push.RootCAs(a.CAFile, a.CA)
	if err != nil {
		return nil, fmt.Errorf("fcm.ca_file: %w", err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	base.MaxIdleConnsPerHost = cmpOr(cfg.MaxInFlight, DefaultMaxInFlight)
	base.ForceAttemptHTTP2 = true
	// The token source fetches with its own client (same roots), under a
	// context that outlives New.
	tokenCtx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, &http.Client{Transport: base, Timeout: 30 * time.Second})
	hc := &http.Client{Transport: captureTransport{&oauth2.Transport{Source: jc.TokenSource(tokenCtx), Base: base}}}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if a.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimRight(a.Endpoint, "/")+"/v1"))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	s := &Sender{
		client:  client,
		sem:     make(chan struct{}, cmpOr(cfg.MaxInFlight, DefaultMaxInFlight)),
		timeout: cmpOr(cfg.Timeout, DefaultTimeout),
		now:     cfg.Now,
		log:     cfg.Logger,
		project: project,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Project is the Firebase project the Sender sends for.
func (s *Sender) Project() string { return s.project }

// Send sends msgs concurrently (at most MaxInFlight at once) and returns
// one Result per message, in order. Messages not started when ctx ends get
// a transient Result with ctx's error.
func (s *Sender) Send(ctx context.Context, msgs []push.Message) []push.Result {
	out := make([]push.Result, len(msgs))
	var wg sync.WaitGroup
	for i := range msgs {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(msgs); j++ {
				out[j] = push.ClassifyErr(push.ProviderFCM, ctx.Err())
			}
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer func() { <-s.sem; wg.Done() }()
			out[i] = s.send(ctx, &msgs[i])
		}()
	}
	wg.Wait()
	return out
}

func (s *Sender) send(ctx context.Context, m *push.Message) push.Result {
	now := s.now()
	if r, ok := push.CheckExpiry(push.ProviderFCM, m, now); !ok {
		return r
	}
	msg := Message(m, now)
	cp := &capture{}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rctx, stop := context.WithCancel(context.WithValue(rctx, captureKey{}, cp))
	defer stop()
	cp.stop = stop
	id, err := s.client.Send(rctx, msg)
	if err == nil {
		return push.Result{Provider: push.ProviderFCM, Sent: true, Status: http.StatusOK, MessageID: id}
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	switch {
	case cp.status != 0:
		code, message := errorDetail(cp.body)
		return push.ClassifyFCM(cp.status, code, message, push.ParseRetryAfter(cp.retryAfter, time.Now()))
	case cp.err != nil:
		return push.ClassifyErr(push.ProviderFCM, cp.err)
	case !cp.sent:
		if ctx.Err() != nil || rctx.Err() != nil {
			return push.ClassifyErr(push.ProviderFCM, err)
		}
		// The SDK refused the message before any request.
		return push.ClassifyErr(push.ProviderFCM, &push.PermanentError{Reason: push.ReasonInvalidMessage, Err: err})
	}
	return push.ClassifyErr(push.ProviderFCM, err)
}

// errorDetail reads an FCM v1 error body: the FcmError errorCode if there
// is one, else the google.rpc status, and the message.
func errorDetail(body []byte) (code, message string) {
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			Details []struct {
				Type      string `json:"@type"`
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	code = e.Error.Status
	for _, d := range e.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" && d.ErrorCode != "" {
			code = d.ErrorCode
			break
		}
	}
	return code, e.Error.Message
}

// capture records, for one message, the first answer (or failure) of its
// request, and stops the SDK from retrying on its own.
type capture struct {
	mu         sync.Mutex
	sent       bool
	status     int
	retryAfter string
	body       []byte
	err        error
	stop       context.CancelFunc
}

type captureKey struct{}

type captureTransport struct{ base http.RoundTripper }

func (t captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(captureKey{}).(*capture)
	if c == nil {
		return t.base.RoundTrip(req)
	}
	c.mu.Lock()
	if c.sent {
		// The SDK's own retry: refuse it, the pipeline retries.
		c.mu.Unlock()
		return nil, errors.New("fcm: no retry inside the SDK")
	}
	c.sent = true
	c.mu.Unlock()
	resp, err := t.base.RoundTrip(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.err = badCredentials(err)
		c.stop()
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	// Keep the answer, and hand the SDK a copy it can read even after
	// the context is canceled.
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	if rerr != nil {
		c.err = rerr
		c.stop()
		return nil, rerr
	}
	c.status, c.body, c.retryAfter = resp.StatusCode, body, resp.Header.Get("Retry-After")
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode == http.StatusServiceUnavailable {
		c.stop() // the SDK would retry a 503 itself
	}
	return resp, nil
}

// badCredentials marks a refusal by the OAuth2 token endpoint (a 4xx) as
// permanent: the service account is wrong, retrying cannot help.
func badCredentials(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode/100 == 4 {
		return &push.PermanentError{Reason: push.ReasonBadCredentials, Err: err}
	}
	return err
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
