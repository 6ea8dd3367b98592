package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	herald "github.com/heraldhq/herald"
)

// Sentinel errors of Verify. The returned errors wrap one of them with the
// detail (never key material), so errors.Is works and Error() is fit for a
// 401 response body.
var (
	// ErrMissingToken means no token was presented.
	ErrMissingToken = errors.New("missing token")
	// ErrInvalidToken means the token is malformed, not signed by a
	// configured key with that key's algorithm, or has invalid claims.
	ErrInvalidToken = errors.New("invalid token")
	// ErrExpired means the token was valid but its exp (plus leeway) passed.
	ErrExpired = errors.New("token expired")
)

const (
	// DefaultLeeway is the clock skew tolerated on exp/nbf/iat when
	// Config.Leeway is zero.
	DefaultLeeway = 30 * time.Second
	// MinSecretLen is the shortest accepted HS256 secret (RFC 7518 §3.2:
	// a key of at least the hash size).
	MinSecretLen = 32
	// MinRSABits is the smallest accepted RSA modulus.
	MinRSABits = 2048
	// MaxTokenLen bounds the token size Verify will even parse.
	MaxTokenLen = 8 << 10
)

// Config configures a Verifier. At least one secret or public key is required.
type Config struct {
	// HMACSecrets verify HS256 tokens; each must be at least MinSecretLen
	// bytes. Several secrets allow rotation: a token signed with any verifies.
	HMACSecrets [][]byte
	// PublicKeysPEM verify asymmetric tokens. Each entry holds one or more
	// PEM blocks: "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY" (PKCS #1) or
	// "CERTIFICATE". An RSA key (≥ MinRSABits) verifies RS256 only; an ECDSA
	// key verifies the one algorithm of its curve (P-256 → ES256, P-384 →
	// ES384, P-521 → ES512).
	PublicKeysPEM [][]byte
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultLeeway, a negative value means none.
	Leeway time.Duration
	// Issuer, when not empty, must equal the token's "iss".
	Issuer string
	// Audience, when not empty, must be one of the token's "aud".
	Audience string
	// MaxLifetime, when positive, is the longest lifetime (exp - iat) a
	// token may claim; a token without iat is then refused, since its
	// lifetime is unknown. Zero means no limit; negative is an error.
	MaxLifetime time.Duration
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// Verifier checks user JWTs. It is immutable after NewVerifier and safe for
// concurrent use.
type Verifier struct {
	parser *jwt.Parser
	leeway time.Duration
	// maxLifetime is Config.MaxLifetime (0: no limit).
	maxLifetime time.Duration
	// keys maps an algorithm to the only keys allowed to verify it: the pin
	// that defeats algorithm confusion.
	keys map[string][]jwt.VerificationKey
}

// NewVerifier validates cfg and parses its keys.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{keys: map[string][]jwt.VerificationKey{}}
	for i, s := range cfg.HMACSecrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("auth: HMAC secret %d is %d bytes, need at least %d", i, len(s), MinSecretLen)
		}
		v.keys[jwt.SigningMethodHS256.Alg()] = append(v.keys[jwt.SigningMethodHS256.Alg()], append([]byte(nil), s...))
	}
	for i, p := range cfg.PublicKeysPEM {
		n, err := v.addPEM(p)
		if err != nil {
			return nil, fmt.Errorf("auth: public key entry %d: %w", i, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("auth: public key entry %d holds no PEM block", i)
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("auth: no HMAC secret or public key configured")
	}
	if cfg.MaxLifetime < 0 {
		return nil, fmt.Errorf("auth: MaxLifetime must not be negative, got %s", cfg.MaxLifetime)
	}
	v.maxLifetime = cfg.MaxLifetime
	algs := make([]string, 0, len(v.keys))
	for alg := range v.keys {
		algs = append(algs, alg)
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	v.parser = jwt.NewParser(opts...)
	v.leeway = leeway
	return v, nil
}

// addPEM adds every key of a PEM bundle, returning how many it found.
func (v *Verifier) addPEM(data []byte) (int, error) {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			if len(strings.TrimSpace(string(data))) != 0 && n == 0 {
				return 0, errors.New("not PEM encoded")
			}
			return n, nil
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return 0, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
		}
		if err != nil {
			return 0, fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
		alg, err := pinnedAlg(pub)
		if err != nil {
			return 0, err
		}
		v.keys[alg] = append(v.keys[alg], pub)
		n++
	}
}

// pinnedAlg is the single algorithm a public key may verify.
func pinnedAlg(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("RSA key of %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256.Alg(), nil
		case elliptic.P384():
			return jwt.SigningMethodES384.Alg(), nil
		case elliptic.P521():
			return jwt.SigningMethodES512.Alg(), nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	default:
		return "", fmt.Errorf("unsupported public key type %T (want RSA or ECDSA)", pub)
	}
}

// keyfunc returns the keys pinned to the token's algorithm. The parser has
// already refused algorithms without keys (WithValidMethods), "none" among
// them.
func (v *Verifier) keyfunc(t *jwt.Token) (any, error) {
	keys := v.keys[t.Method.Alg()]
	if len(keys) == 0 {
		return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// Verify checks token and returns its subject, the user id. It does not
// block. Errors wrap ErrMissingToken, ErrInvalidToken or ErrExpired.
func (v *Verifier) Verify(token string) (userID string, err error) {
	userID, _, err = v.VerifyExpiry(token)
	return userID, err
}

// VerifyExpiry is Verify that also returns until when the token is
// accepted: its exp plus the leeway. Long-lived sessions (WebSockets) use
// it to end when their credential does.
func (v *Verifier) VerifyExpiry(token string) (userID string, validUntil time.Time, err error) {
	if token == "" {
		return "", time.Time{}, ErrMissingToken
	}
	if len(token) > MaxTokenLen {
		return "", time.Time{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	var claims tokenClaims
	tok, err := v.parser.ParseWithClaims(token, &claims, v.keyfunc)
	if err != nil {
		return "", time.Time{}, classify(err)
	}
	// RFC 7515 §4.1.11: a recipient must refuse a token whose crit names
	// an extension it does not understand, and Herald understands none.
	if _, ok := tok.Header["crit"]; ok {
		return "", time.Time{}, fmt.Errorf("%w: crit header: no JWS extension is supported", ErrInvalidToken)
	}
	if err := herald.ValidateUserID(claims.Subject); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: sub: %w", ErrInvalidToken, err)
	}
	if v.maxLifetime > 0 {
		if claims.IssuedAt == nil {
			return "", time.Time{}, fmt.Errorf("%w: missing iat claim (required: tokens may live at most %s)", ErrInvalidToken, v.maxLifetime)
		}
		if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > v.maxLifetime {
			return "", time.Time{}, fmt.Errorf("%w: lifetime (exp - iat) of %s is more than the %s allowed", ErrInvalidToken, life, v.maxLifetime)
		}
	}
	// exp is required, so ExpiresAt is set.
	return claims.Subject, claims.ExpiresAt.Add(v.leeway), nil
}

// tokenClaims are the registered claims, decoded only if exp, iat and nbf
// are JSON numbers: jwt.NumericDate also takes a string holding a number
// ("exp":"9999999999"), which RFC 7519 §2 does not allow.
type tokenClaims struct {
	jwt.RegisteredClaims
}

// claimTypeError is a registered time claim that is not a JSON number.
type claimTypeError struct {
	claim, got string
}

func (e *claimTypeError) Error() string {
	return e.claim + " claim must be a number (NumericDate), got " + e.got
}

// UnmarshalJSON checks the types of the time claims, then decodes.
// encoding/json matches names case-insensitively, the same way for both
// decodes, so what is checked is what is used.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	var raw struct {
		Exp json.RawMessage `json:"exp"`
		Iat json.RawMessage `json:"iat"`
		Nbf json.RawMessage `json:"nbf"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"exp", raw.Exp}, {"iat", raw.Iat}, {"nbf", raw.Nbf}} {
		if got := jsonKind(f.v); got != "" {
			return &claimTypeError{claim: f.name, got: got}
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

// jsonKind names the kind of the JSON value v when it is present and not
// a number (null counts as absent), else "".
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return ""
	}
	switch c := v[0]; {
	case c == '-' || c >= '0' && c <= '9':
		return ""
	case c == 'n':
		return "" // null: absent
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	}
	return "something else"
}

// classify maps a jwt error to a sentinel with a short, key-free reason.
func classify(err error) error {
	var cte *claimTypeError
	switch {
	case errors.As(err, &cte):
		return fmt.Errorf("%w: %s", ErrInvalidToken, cte.Error())
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: malformed", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: signature does not verify with an accepted algorithm and key", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: missing exp claim", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: not valid yet (nbf)", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: issued in the future (iat)", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: wrong audience", ErrInvalidToken)
	default:
		return fmt.Errorf("%w: invalid claims", ErrInvalidToken)
	}
}

// Mint signs an HS256 token for userID valid for ttl, with iat and exp. It
// is what `herald token` prints; secret must be one of the Verifier's
// HMACSecrets.
func Mint(secret []byte, userID string, ttl time.Duration) (string, error) {
	tok, _, err := MintExpiry(secret, userID, ttl)
	return tok, err
}

// MintExpiry is Mint that also returns the token's exp, in the whole
// seconds the token carries.
func MintExpiry(secret []byte, userID string, ttl time.Duration) (token string, exp time.Time, err error) {
	if len(secret) < MinSecretLen {
		return "", time.Time{}, fmt.Errorf("auth: secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if err := herald.ValidateUserID(userID); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: %w", err)
	}
	if ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("auth: ttl must be positive, got %s", ttl)
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, claims.ExpiresAt.Time, nil
}

// BearerToken returns the credential of r: the token of an
// "Authorization: Bearer <token>" header, else the "token" query parameter
// (browsers cannot set headers on a WebSocket handshake), else "".
func BearerToken(r *http.Request) string {
	if t := AuthorizationBearer(r); t != "" {
		return t
	}
	return r.URL.Query().Get("token")
}

// AuthorizationBearer returns the token of an "Authorization: Bearer
// <token>" header (scheme case-insensitive), or "". Use it rather than
// BearerToken for credentials that must not travel in URLs (API keys).
func AuthorizationBearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}
