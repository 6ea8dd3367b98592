package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/auth"
)

// startDevWith starts herald dev the way `herald dev <args>` does: the
// dev command's flags parsed by app/config, then DevConfigFrom.
func startDevWith(t *testing.T, args ...string) *Dev {
	t.Helper()
	c, err := config.New("dev", "")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--kafka-port", "0"}
	noEnv := func(string) (string, bool) { return "", false }
	cfg, err := c.Parse(append(base, args...), noEnv, io.Discard)
	if err != nil {
		t.Fatalf("herald dev %s: %v", strings.Join(args, " "), err)
	}
	dc := DevConfigFrom(cfg)
	dc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := StartDev(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDev(t, d) })
	return d
}

// status sends one request with a bearer credential and returns the status.
func status(t *testing.T, d *Dev, method, path, bearer, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, d.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadRequest {
		t.Logf("%s %s: 400 %s", method, path, raw)
	}
	return resp.StatusCode
}

func unreadStatus(t *testing.T, d *Dev, tok string) int {
	t.Helper()
	return status(t, d, http.MethodGet, "/v1/notifications/unread_count", tok, "")
}

// firstRefused sends up to n requests and returns the 1-based index of the
// first one answered 429 (0: none was); any other status but 2xx fails.
func firstRefused(t *testing.T, n int, send func(i int) int) int {
	t.Helper()
	for i := 1; i <= n; i++ {
		switch code := send(i); {
		case code == http.StatusTooManyRequests:
			return i
		case code < 200 || code > 299:
			t.Fatalf("request %d: %d", i, code)
		}
	}
	return 0
}

// event is a valid event body with a distinct id.
func event(i int) string {
	return `{"id":"flags-` + strconv.Itoa(i) + `","user_id":"alice","type":"t","title":"hi"}`
}

// es256Key writes a PEM public key file and returns it with its signer.
func es256Key(t *testing.T) (path string, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "users.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// herald dev --jwt-secret, --jwt-public-keys and --api-keys take effect,
// for the API and the WebSocket alike, besides the dev secrets.
func TestDevHonoursAuthFlags(t *testing.T) {
	const secret = "dev-flags-test-secret-0123456789abcdef"
	const apiKey = "dev-flags-test-api-key"
	pubPath, priv := es256Key(t)
	d := startDevWith(t, "--jwt-secret", secret, "--jwt-public-keys", pubPath, "--api-keys", apiKey+",second-key")

	mintHS := func(s, user string) string {
		tok, err := auth.Mint([]byte(s), user, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	esTok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Subject: "erin", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok string
		want      int
	}{
		{"--jwt-secret", mintHS(secret, "alice"), http.StatusOK},
		{"--jwt-public-keys", esTok, http.StatusOK},
		{"dev secret", token(t, d, "bob"), http.StatusOK},
		{"unknown secret", mintHS("some-other-secret-0123456789abcdefgh", "mallory"), http.StatusUnauthorized},
	} {
		if got := unreadStatus(t, d, tc.tok); got != tc.want {
			t.Errorf("%s: GET unread_count = %d, want %d", tc.name, got, tc.want)
		}
	}
	// The gateway takes the same tokens.
	for _, tok := range []string{mintHS(secret, "alice"), esTok} {
		c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(d.URL(), "http")+"/v1/ws?token="+tok, nil)
		if resp != nil {
			resp.Body.Close()
		}
		if err != nil {
			t.Fatalf("WebSocket with a flag's token: %v (%v)", err, resp)
		}
		if f := read(t, c); f.Type != "synced" {
			t.Fatalf("got %v, want synced", f)
		}
		_ = c.Close()
	}

	for n, tc := range []struct {
		name, key string
		want      int
	}{
		{"--api-keys first", apiKey, http.StatusAccepted},
		{"--api-keys second", "second-key", http.StatusAccepted},
		{"dev key", d.Secrets().APIKey, http.StatusAccepted},
		{"unknown key", "not-a-key", http.StatusUnauthorized},
	} {
		if got := status(t, d, http.MethodPost, "/v1/events", tc.key, event(n)); got != tc.want {
			t.Errorf("%s: POST /v1/events = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// herald dev --rate-user and --rate-events-per-key take effect: past the
// burst (twice the rate) requests are answered 429, per user and per key.
func TestDevHonoursRateFlags(t *testing.T) {
	d := startDevWith(t, "--rate-user", "1", "--rate-events-per-key", "1")
	alice := token(t, d, "alice")
	// Bursts of 2: the first two pass, and one of the next 18 is refused
	// (the bucket refills at 1/s, so only a very slow machine lets a few
	// more through; none lets all of them through).
	if i := firstRefused(t, 20, func(int) int { return unreadStatus(t, d, alice) }); i <= 2 {
		t.Fatalf("--rate-user 1: first 429 at request %d of 20 (0: none), want the first 2 (the burst) to pass and a later one refused", i)
	}
	if got := unreadStatus(t, d, token(t, d, "bob")); got != http.StatusOK {
		t.Fatalf("another user: %d, want 200 (the limit is per user)", got)
	}
	key := d.Secrets().APIKey
	if i := firstRefused(t, 20, func(i int) int { return status(t, d, http.MethodPost, "/v1/events", key, event(i)) }); i <= 2 {
		t.Fatalf("--rate-events-per-key 1: first 429 at event %d of 20 (0: none), want the first 2 to pass and a later one refused", i)
	}
}

// Without flags, dev has the documented per-user limit (20/s, bursts of
// 40) and no per-key limit.
func TestDevDefaultRateLimits(t *testing.T) {
	d := startDevWith(t)
	alice := token(t, d, "alice")
	if i := firstRefused(t, 400, func(int) int { return unreadStatus(t, d, alice) }); i <= 40 {
		t.Fatalf("default --rate-user: first 429 at request %d of 400 (0: none), want the first 40 (the burst) to pass and a later one refused", i)
	}
	key := d.Secrets().APIKey
	if i := firstRefused(t, 100, func(i int) int { return status(t, d, http.MethodPost, "/v1/events", key, event(i)) }); i != 0 {
		t.Fatalf("default --rate-events-per-key (no limit): event %d refused", i)
	}
}
