package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var policyNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func policyVerifier(t testing.TB, maxLifetime time.Duration) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{
		HMACSecrets: [][]byte{secret1},
		MaxLifetime: maxLifetime,
		Now:         func() time.Time { return policyNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signMap signs claims as given (any JSON types) with secret1, with extra
// header fields.
func signMap(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(secret1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unix(t time.Time) int64 { return t.Unix() }

func TestVerifyPolicy(t *testing.T) {
	exp := unix(policyNow.Add(time.Hour))
	iat := unix(policyNow.Add(-time.Minute))
	day := 24 * time.Hour
	tests := []struct {
		name        string
		maxLifetime time.Duration
		token       string
		reason      string // "" means accepted
	}{
		{"numeric claims", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "iat": iat, "nbf": iat}, nil), ""},
		{"fractional exp", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": float64(exp) + 0.5}, nil), ""},
		{"null iat is absent", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "iat": nil}, nil), ""},
		// Today's rule, kept: exp is required.
		{"no exp", 0, signMap(t, jwt.MapClaims{"sub": "u", "iat": iat}, nil), "missing exp claim"},
		{"string exp", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": "9999999999"}, nil), "exp claim must be a number (NumericDate), got a string"},
		{"string exp, other case", 0, signMap(t, jwt.MapClaims{"sub": "u", "EXP": "9999999999"}, nil), "exp claim must be a number"},
		{"bool exp", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": true}, nil), "exp claim must be a number (NumericDate), got a boolean"},
		{"string iat", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "iat": "1"}, nil), "iat claim must be a number (NumericDate), got a string"},
		{"bool iat", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "iat": false}, nil), "iat claim must be a number (NumericDate), got a boolean"},
		{"string nbf", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "nbf": "0"}, nil), "nbf claim must be a number (NumericDate), got a string"},
		{"object nbf", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "nbf": map[string]any{}}, nil), "nbf claim must be a number (NumericDate), got an object"},
		{"crit header", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp}, map[string]any{"crit": []string{"exp"}}), "crit header: no JWS extension is supported"},
		{"empty crit header", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp}, map[string]any{"crit": []string{}}), "crit header"},
		{"ten-year token, no limit", 0, signMap(t, jwt.MapClaims{"sub": "u", "exp": unix(policyNow.Add(3650 * day)), "iat": iat}, nil), ""},
		{"within max lifetime", day, signMap(t, jwt.MapClaims{"sub": "u", "exp": unix(policyNow.Add(23 * time.Hour)), "iat": iat}, nil), ""},
		{"exactly max lifetime", day, signMap(t, jwt.MapClaims{"sub": "u", "exp": iat + int64(day/time.Second), "iat": iat}, nil), ""},
		{"beyond max lifetime", day, signMap(t, jwt.MapClaims{"sub": "u", "exp": unix(policyNow.Add(3650 * day)), "iat": iat}, nil), "lifetime (exp - iat) of 87600h1m0s is more than the 24h0m0s allowed"},
		{"backdated iat beyond max lifetime", day, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp, "iat": unix(policyNow.Add(-2 * day))}, nil), "more than the 24h0m0s allowed"},
		{"no iat with max lifetime", day, signMap(t, jwt.MapClaims{"sub": "u", "exp": exp}, nil), "missing iat claim (required: tokens may live at most 24h0m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := policyVerifier(t, tt.maxLifetime).Verify(tt.token)
			if tt.reason == "" {
				if err != nil || user != "u" {
					t.Fatalf("Verify = %q, %v; want u accepted", user, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Verify = %q, %v; want ErrInvalidToken containing %q", user, err, tt.reason)
			}
			if user != "" {
				t.Fatalf("user %q on error", user)
			}
		})
	}
}

func TestMaxLifetimeConfig(t *testing.T) {
	if _, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}, MaxLifetime: -time.Second}); err == nil || !strings.Contains(err.Error(), "MaxLifetime") {
		t.Fatalf("negative MaxLifetime: err = %v", err)
	}
	// Mint sets iat, so its tokens pass a lifetime limit at least their ttl.
	tok, err := Mint(secret1, "u", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	v, err = NewVerifier(Config{HMACSecrets: [][]byte{secret1}, MaxLifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("an hour-long token with a one-minute limit: err = %v", err)
	}
}

// FuzzVerify feeds arbitrary tokens to the parser: it never panics, every
// error wraps one of the sentinels, and whatever it accepts satisfies the
// policy (numeric exp within the lifetime limit, a valid user id).
func FuzzVerify(f *testing.F) {
	exp := unix(policyNow.Add(time.Hour))
	iat := unix(policyNow.Add(-time.Minute))
	for _, tok := range []string{
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": exp, "iat": iat}, nil),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": exp, "iat": iat, "nbf": iat, "aud": []string{"a"}}, nil),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": "9999999999"}, nil),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": true}, nil),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": exp}, map[string]any{"crit": []string{"b64"}}),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": unix(policyNow.Add(1000 * time.Hour)), "iat": iat}, nil),
		signMap(f, jwt.MapClaims{"sub": "u-1", "exp": 1e300, "iat": -1e300}, nil),
		signMap(f, jwt.MapClaims{"sub": "u 1", "exp": exp}, nil),
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.",
		"not.a.jwt",
		"a.b.c.d",
		"",
		"..",
	} {
		f.Add(tok)
	}
	v := policyVerifier(f, 24*time.Hour)
	f.Fuzz(func(t *testing.T, tok string) {
		user, until, err := v.VerifyExpiry(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrMissingToken) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if user != "" {
				t.Fatalf("user %q on error", user)
			}
			return
		}
		if user == "" || !until.After(policyNow.Add(-v.leeway)) {
			t.Fatalf("accepted %q until %v", user, until)
		}
		if until.Sub(policyNow) > 24*time.Hour+2*v.leeway {
			t.Fatalf("accepted a token valid until %v, beyond the lifetime limit", until)
		}
	})
}
