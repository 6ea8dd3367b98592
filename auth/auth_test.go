package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret1 = []byte("0123456789abcdef0123456789abcdef")
	secret2 = []byte("fedcba9876543210fedcba9876543210-rotated")
	other   = []byte("this-is-not-a-configured-secret!!")
)

type keys struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ecOther   *ecdsa.PrivateKey
	rsaPEM, ecPEM []byte
}

func genKeys(t *testing.T) keys {
	t.Helper()
	var k keys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM = pkixPEM(t, &k.rsa.PublicKey)
	k.ecPEM = pkixPEM(t, &k.ec.PublicKey)
	return k
}

func pkixPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour))}
}

func TestVerify(t *testing.T) {
	k := genKeys(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	v, err := NewVerifier(Config{
		HMACSecrets:   [][]byte{secret1, secret2},
		PublicKeysPEM: [][]byte{append(append([]byte{}, k.rsaPEM...), k.ecPEM...)},
		Leeway:        5 * time.Second,
		Now:           func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	future := now.Add(time.Hour)
	noExp := jwt.RegisteredClaims{Subject: "u-1"}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("u-1", future)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	notBefore := claims("u-1", future)
	notBefore.NotBefore = jwt.NewNumericDate(now.Add(time.Minute))

	tests := []struct {
		name  string
		token string
		user  string
		err   error
	}{
		{"hs256", sign(t, jwt.SigningMethodHS256, secret1, claims("u-1", future)), "u-1", nil},
		{"hs256 rotated secret", sign(t, jwt.SigningMethodHS256, secret2, claims("a.b@c:d_e-f", future)), "a.b@c:d_e-f", nil},
		{"rs256", sign(t, jwt.SigningMethodRS256, k.rsa, claims("u-rsa", future)), "u-rsa", nil},
		{"es256", sign(t, jwt.SigningMethodES256, k.ec, claims("u-ec", future)), "u-ec", nil},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, secret1, claims("u-1", now.Add(-3*time.Second))), "u-1", nil},
		{"expired", sign(t, jwt.SigningMethodHS256, secret1, claims("u-1", now.Add(-time.Minute))), "", ErrExpired},
		{"expired rs256", sign(t, jwt.SigningMethodRS256, k.rsa, claims("u-1", now.Add(-time.Minute))), "", ErrExpired},
		{"empty", "", "", ErrMissingToken},
		{"malformed", "not.a.jwt", "", ErrInvalidToken},
		{"garbage", "abc", "", ErrInvalidToken},
		{"too long", strings.Repeat("a", MaxTokenLen+1), "", ErrInvalidToken},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, other, claims("u-1", future)), "", ErrInvalidToken},
		{"wrong rsa key", sign(t, jwt.SigningMethodRS256, k.rsaOther, claims("u-1", future)), "", ErrInvalidToken},
		{"wrong ec key", sign(t, jwt.SigningMethodES256, k.ecOther, claims("u-1", future)), "", ErrInvalidToken},
		{"alg none", noneTok, "", ErrInvalidToken},
		{"hs384 not accepted", sign(t, jwt.SigningMethodHS384, secret1, claims("u-1", future)), "", ErrInvalidToken},
		{"ps256 with rsa key not accepted", sign(t, jwt.SigningMethodPS256, k.rsa, claims("u-1", future)), "", ErrInvalidToken},
		// Algorithm confusion: the RSA public key's PEM used as an HMAC secret.
		{"hs256 signed with rsa public pem", sign(t, jwt.SigningMethodHS256, k.rsaPEM, claims("u-1", future)), "", ErrInvalidToken},
		{"hs256 signed with ec public pem", sign(t, jwt.SigningMethodHS256, k.ecPEM, claims("u-1", future)), "", ErrInvalidToken},
		{"missing exp", sign(t, jwt.SigningMethodHS256, secret1, noExp), "", ErrInvalidToken},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret1, notBefore), "", ErrInvalidToken},
		{"empty sub", sign(t, jwt.SigningMethodHS256, secret1, claims("", future)), "", ErrInvalidToken},
		{"bad sub", sign(t, jwt.SigningMethodHS256, secret1, claims("u 1/..", future)), "", ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := v.Verify(tt.token)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if user != tt.user {
					t.Fatalf("user = %q, want %q", user, tt.user)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if user != "" {
				t.Fatalf("user = %q on error", user)
			}
		})
	}
}

// A verifier with only public keys must not accept HMAC tokens at all, and
// one with only secrets must not accept RS256.
func TestVerifyOnlyConfiguredFamilies(t *testing.T) {
	k := genKeys(t)
	pubOnly, err := NewVerifier(Config{PublicKeysPEM: [][]byte{k.rsaPEM}})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	if _, err := pubOnly.Verify(sign(t, jwt.SigningMethodHS256, k.rsaPEM, claims("u-1", exp))); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("HS256 on a public-key-only verifier: %v", err)
	}
	if _, err := pubOnly.Verify(sign(t, jwt.SigningMethodES256, k.ec, claims("u-1", exp))); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("ES256 without an EC key: %v", err)
	}
	secOnly, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secOnly.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, claims("u-1", exp))); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("RS256 on a secret-only verifier: %v", err)
	}
}

func TestIssuerAudience(t *testing.T) {
	v, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}, Issuer: "https://id.example", Audience: "herald"})
	if err != nil {
		t.Fatal(err)
	}
	c := claims("u-1", time.Now().Add(time.Hour))
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret1, c)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("no iss/aud: %v", err)
	}
	c.Issuer = "https://id.example"
	c.Audience = jwt.ClaimStrings{"other", "herald"}
	if u, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret1, c)); err != nil || u != "u-1" {
		t.Fatalf("Verify = %q, %v", u, err)
	}
	c.Issuer = "https://evil.example"
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret1, c)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("wrong iss: %v", err)
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	k := genKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(k.rsa)
	for name, cfg := range map[string]Config{
		"nothing":        {},
		"short secret":   {HMACSecrets: [][]byte{[]byte("short")}},
		"not pem":        {PublicKeysPEM: [][]byte{[]byte("hello")}},
		"empty pem":      {PublicKeysPEM: [][]byte{nil}},
		"private key":    {PublicKeysPEM: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})}},
		"small rsa":      {PublicKeysPEM: [][]byte{pkixPEM(t, &small.PublicKey)}},
		"corrupt pkix":   {PublicKeysPEM: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})}},
		"unsupported ec": {PublicKeysPEM: [][]byte{pkixPEM(t, mustEC(t, elliptic.P224()))}},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: NewVerifier succeeded", name)
		} else if strings.Contains(err.Error(), string(secret1)) {
			t.Errorf("%s: error leaks a secret: %v", name, err)
		}
	}
	// PKCS #1 "RSA PUBLIC KEY" blocks are accepted too.
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	v, err := NewVerifier(Config{PublicKeysPEM: [][]byte{pkcs1}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := v.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, claims("u-1", time.Now().Add(time.Minute)))); err != nil || u != "u-1" {
		t.Fatalf("PKCS1 key: %q, %v", u, err)
	}
}

func mustEC(t *testing.T, c elliptic.Curve) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func TestMint(t *testing.T) {
	v, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(secret1, "u-42", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := v.Verify(tok); err != nil || u != "u-42" {
		t.Fatalf("Verify(Mint) = %q, %v", u, err)
	}
	u, until, err := v.VerifyExpiry(tok)
	if want := time.Now().Add(time.Hour + DefaultLeeway); err != nil || u != "u-42" || until.Before(want.Add(-2*time.Second)) || until.After(want) {
		t.Fatalf("VerifyExpiry(Mint) = %q, %v, %v; want about %v", u, until, err, want)
	}
	if _, err := Mint(secret1, "bad user", time.Hour); err == nil {
		t.Error("Mint accepted an invalid user id")
	}
	if _, err := Mint([]byte("short"), "u", time.Hour); err == nil {
		t.Error("Mint accepted a short secret")
	}
	if _, err := Mint(secret1, "u", 0); err == nil {
		t.Error("Mint accepted ttl 0")
	}
	expired, err := NewVerifier(Config{HMACSecrets: [][]byte{secret1}, Leeway: -1, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := expired.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after ttl: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, url, want, wantHeader string
	}{
		{"Bearer abc", "/v1/ws", "abc", "abc"},
		{"bearer  abc ", "/v1/ws?token=q", "abc", "abc"},
		{"Basic abc", "/v1/ws?token=q", "q", ""},
		{"", "/v1/ws?token=q.r.s", "q.r.s", ""},
		{"Bearer", "/v1/ws", "", ""},
		{"", "/v1/ws", "", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.url, nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if got := BearerToken(r); got != tt.want {
			t.Errorf("BearerToken(%q, %q) = %q, want %q", tt.header, tt.url, got, tt.want)
		}
		if got := AuthorizationBearer(r); got != tt.wantHeader {
			t.Errorf("AuthorizationBearer(%q) = %q, want %q", tt.header, got, tt.wantHeader)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	k, err := NewAPIKeys("key-one", "key-two-longer")
	if err != nil {
		t.Fatal(err)
	}
	// A slice, not a map: the padded "key-one " is deliberate (no trimming).
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"key-one", true}, {"key-two-longer", true}, {"", false}, {"key-on", false}, {"key-one ", false}, {"KEY-ONE", false},
	} {
		if got := k.Valid(tc.key); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if k.Len() != 2 {
		t.Errorf("Len = %d", k.Len())
	}
	if _, err := NewAPIKeys("a", ""); err == nil {
		t.Error("empty key accepted")
	}
	var none *APIKeys
	if none.Valid("key-one") {
		t.Error("nil set accepted a key")
	}
	empty, _ := NewAPIKeys()
	if empty.Valid("key-one") {
		t.Error("empty set accepted a key")
	}
}
