package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldhq/herald/delivery/push"
)

// seen is one request the test server received.
type seen struct {
	path    string
	header  http.Header
	body    []byte
	iat     int64
	bearer  string
	jwtErr  error
	payload map[string]any
}

// server is a small APNs lookalike over HTTP/2 and TLS: it checks the
// provider token against the key, records every request and answers with
// answer (200 when nil).
type server struct {
	srv    *httptest.Server
	pub    *ecdsa.PublicKey
	p8     []byte
	mu     sync.Mutex
	seen   []seen
	answer func(s *seen) (status int, reason string, h http.Header)
}

func newServer(t testing.TB) *server {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{pub: &key.PublicKey, p8: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := seen{path: r.URL.Path, header: r.Header.Clone(), body: body}
	rec.bearer = strings.TrimPrefix(r.Header.Get("authorization"), "bearer ")
	tok, err := jwt.Parse(rec.bearer, func(tk *jwt.Token) (any, error) { return s.pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuedAt())
	rec.jwtErr = err
	if err == nil {
		if iat, ierr := tok.Claims.GetIssuedAt(); ierr == nil && iat != nil {
			rec.iat = iat.Unix()
		}
		if tok.Header["kid"] != "KEYID12345" {
			rec.jwtErr = jwt.ErrTokenInvalidClaims
		}
		if iss, _ := tok.Claims.GetIssuer(); iss != "TEAMID" {
			rec.jwtErr = jwt.ErrTokenInvalidIssuer
		}
	}
	_ = json.Unmarshal(body, &rec.payload)
	status, reason, h := http.StatusOK, "", http.Header(nil)
	if rec.jwtErr != nil {
		status, reason = http.StatusForbidden, push.APNsInvalidProviderToken
	} else if s.answer != nil {
		status, reason, h = s.answer(&rec)
	}
	s.mu.Lock()
	s.seen = append(s.seen, rec)
	s.mu.Unlock()
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("apns-id", r.Header.Get("apns-id"))
	w.WriteHeader(status)
	if reason != "" {
		_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
	}
}

func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.seen...)
}

func (s *server) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

func (s *server) app() push.APNsApp {
	return push.APNsApp{Key: s.p8, KeyID: "KEYID12345", TeamID: "TEAMID", Topic: "com.example.app", Endpoint: s.srv.URL, CA: s.caPEM()}
}

func (s *server) sender(t testing.TB, cfg Config) *Sender {
	cfg.App = s.app()
	snd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snd.Close)
	return snd
}
