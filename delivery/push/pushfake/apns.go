package pushfake

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Apple's documented reasons, as the fake answers them.
const (
	ReasonBadCollapseID          = "BadCollapseId"
	ReasonBadDeviceToken         = "BadDeviceToken"
	ReasonBadExpirationDate      = "BadExpirationDate"
	ReasonBadMessageID           = "BadMessageId"
	ReasonBadPriority            = "BadPriority"
	ReasonBadTopic               = "BadTopic"
	ReasonDeviceTokenNotForTopic = "DeviceTokenNotForTopic"
	ReasonDuplicateHeaders       = "DuplicateHeaders"
	ReasonInvalidPushType        = "InvalidPushType"
	ReasonMissingDeviceToken     = "MissingDeviceToken"
	ReasonMissingTopic           = "MissingTopic"
	ReasonPayloadEmpty           = "PayloadEmpty"
	ReasonTopicDisallowed        = "TopicDisallowed"
	ReasonExpiredProviderToken   = "ExpiredProviderToken"
	ReasonInvalidProviderToken   = "InvalidProviderToken"
	ReasonMissingProviderToken   = "MissingProviderToken"
	ReasonBadPath                = "BadPath"
	ReasonMethodNotAllowed       = "MethodNotAllowed"
	ReasonUnregistered           = "Unregistered"
	ReasonPayloadTooLarge        = "PayloadTooLarge"
	ReasonTooManyRequests        = "TooManyRequests"
	ReasonInternalServerError    = "InternalServerError"
	ReasonServiceUnavailable     = "ServiceUnavailable"
	// ReasonBadPayload is the fake's answer (400) to a body that is not a
	// JSON object with an "aps" dictionary. Apple documents no reason for
	// that case; this one is not in its list.
	ReasonBadPayload = "BadPayload"
)

// APNs limits the fake enforces, as Apple documents them.
const (
	APNsMaxPayload     = 4096 // bytes, every push type but voip
	APNsMaxVoIPPayload = 5120 // bytes, apns-push-type voip
	APNsMaxCollapseID  = 64   // bytes
	// APNsTokenMaxAge is how old a provider token's iat may be.
	APNsTokenMaxAge = time.Hour
	// apnsClockSkew is how far in the future an iat is still accepted.
	apnsClockSkew = time.Minute
)

// pushTypes are the apns-push-type values Apple accepts, with the suffix the
// topic then carries after the bundle id.
var pushTypes = map[string]string{
	"alert":        "",
	"background":   "",
	"location":     ".location-query",
	"voip":         ".voip",
	"complication": ".complication",
	"fileprovider": ".pushkit.fileprovider",
	"mdm":          "",
	"liveactivity": ".push-type.liveactivity",
	"pushtotalk":   ".voip-ptt",
	"widgets":      ".push-type.widgets",
	"controls":     ".push-type.controls",
}

// checkedHeaders may appear once each (else DuplicateHeaders).
var checkedHeaders = [...]string{"Authorization", "Apns-Id", "Apns-Topic", "Apns-Push-Type", "Apns-Priority", "Apns-Expiration", "Apns-Collapse-Id"}

// recordedHeaders are copied into a Record, under their lower-case names.
var recordedHeaders = [...]struct{ canon, name string }{
	{"Apns-Topic", "apns-topic"},
	{"Apns-Push-Type", "apns-push-type"},
	{"Apns-Priority", "apns-priority"},
	{"Apns-Expiration", "apns-expiration"},
	{"Apns-Collapse-Id", "apns-collapse-id"},
}

type apnsKey struct {
	teamID string
	pub    *ecdsa.PublicKey
}

// maxJWTCache bounds the verified-token cache; past it the cache starts over.
const maxJWTCache = 4096

type apnsServer struct {
	f      *Fakes
	keys   map[string]apnsKey         // by key id
	topics map[string]map[string]bool // team id → bundle ids
	parser *jwt.Parser

	mu       sync.RWMutex
	verified map[string]verifiedJWT // bearer string → its checked claims
}

type verifiedJWT struct {
	teamID string
	iat    time.Time
}

func newAPNsServer(f *Fakes, apps []APNsApp) *apnsServer {
	s := &apnsServer{
		f:        f,
		keys:     make(map[string]apnsKey),
		topics:   make(map[string]map[string]bool),
		parser:   jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithoutClaimsValidation()),
		verified: make(map[string]verifiedJWT),
	}
	for _, a := range apps {
		s.keys[a.KeyID] = apnsKey{teamID: a.TeamID, pub: a.PublicKey}
		if s.topics[a.TeamID] == nil {
			s.topics[a.TeamID] = make(map[string]bool)
		}
		s.topics[a.TeamID][a.Topic] = true
	}
	return s
}

func (s *apnsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.f.now()
	rec := Record{Provider: APNs, At: now, Headers: make(map[string]string, len(recordedHeaders)+1)}
	reqID := r.Header.Get("Apns-Id")
	respID := reqID
	if !validUUID(respID) {
		respID = newUUID()
	}
	rec.Headers["apns-id"] = respID
	for _, h := range recordedHeaders {
		if v := r.Header.Get(h.canon); v != "" {
			rec.Headers[h.name] = v
		}
	}
	status, reason, retryAfter := s.check(r, now, reqID, &rec)
	rec.Status, rec.Reason = status, reason

	hdr := w.Header()
	hdr["Apns-Id"] = []string{respID}
	if retryAfter {
		hdr["Retry-After"] = []string{"1"}
	}
	if status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
	} else {
		hdr["Content-Type"] = []string{"application/json"}
		w.WriteHeader(status)
		body := make([]byte, 0, 64)
		body = append(body, `{"reason":"`...)
		body = append(body, reason...)
		body = append(body, '"')
		if status == http.StatusGone {
			body = append(body, `,"timestamp":`...)
			body = strconv.AppendInt(body, now.UnixMilli(), 10)
		}
		body = append(body, '}')
		_, _ = w.Write(body)
	}
	s.f.rec.add(rec)
}

// check runs Apple's checks in order and returns the answer: the status,
// the reason ("" for 200) and whether to add Retry-After.
func (s *apnsServer) check(r *http.Request, now time.Time, reqID string, rec *Record) (int, string, bool) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, ReasonMethodNotAllowed, false
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || strings.Contains(token, "/") {
		return http.StatusNotFound, ReasonBadPath, false
	}
	rec.Token = token
	if token == "" {
		return http.StatusBadRequest, ReasonMissingDeviceToken, false
	}
	if s.f.outage(APNs) {
		return http.StatusServiceUnavailable, ReasonServiceUnavailable, false
	}
	for _, h := range checkedHeaders {
		if len(r.Header[h]) > 1 {
			return http.StatusBadRequest, ReasonDuplicateHeaders, false
		}
	}
	teamID, reason := s.authorize(r.Header.Get("Authorization"), now)
	if reason != "" {
		return http.StatusForbidden, reason, false
	}
	if reqID != "" && !validUUID(reqID) {
		return http.StatusBadRequest, ReasonBadMessageID, false
	}
	switch r.Header.Get("Apns-Priority") {
	case "", "1", "5", "10":
	default:
		return http.StatusBadRequest, ReasonBadPriority, false
	}
	if exp := r.Header.Get("Apns-Expiration"); exp != "" {
		if n, err := strconv.ParseInt(exp, 10, 64); err != nil || n < 0 {
			return http.StatusBadRequest, ReasonBadExpirationDate, false
		}
	}
	if len(r.Header.Get("Apns-Collapse-Id")) > APNsMaxCollapseID {
		return http.StatusBadRequest, ReasonBadCollapseID, false
	}
	pushType := r.Header.Get("Apns-Push-Type")
	suffix := ""
	if pushType != "" {
		sfx, known := pushTypes[pushType]
		if !known {
			return http.StatusBadRequest, ReasonInvalidPushType, false
		}
		suffix = sfx
	}
	topic := r.Header.Get("Apns-Topic")
	if topic == "" {
		return http.StatusBadRequest, ReasonMissingTopic, false
	}
	if !validTopic(topic) {
		return http.StatusBadRequest, ReasonBadTopic, false
	}
	bundle, ok := strings.CutSuffix(topic, suffix)
	if !ok || !s.topics[teamID][bundle] {
		return http.StatusBadRequest, ReasonTopicDisallowed, false
	}

	limit := APNsMaxPayload
	if pushType == "voip" {
		limit = APNsMaxVoIPPayload
	}
	if r.ContentLength > int64(limit) {
		return http.StatusRequestEntityTooLarge, ReasonPayloadTooLarge, false
	}
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	}
	if err != nil {
		return http.StatusBadRequest, ReasonPayloadEmpty, false
	}
	if len(body) > limit {
		return http.StatusRequestEntityTooLarge, ReasonPayloadTooLarge, false
	}
	if len(body) == 0 {
		return http.StatusBadRequest, ReasonPayloadEmpty, false
	}
	if !json.Valid(body) {
		return http.StatusBadRequest, ReasonBadPayload, false
	}
	rec.Payload = body
	if !hasApsDictionary(body) {
		return http.StatusBadRequest, ReasonBadPayload, false
	}
	if !tokenOK(token, s.f.cfg.StrictTokens) {
		return http.StatusBadRequest, ReasonBadDeviceToken, false
	}
	behaviour := s.f.behaviourOf(token)
	switch behaviour {
	case Unregistered:
		return http.StatusGone, ReasonUnregistered, false
	case BadToken:
		return http.StatusBadRequest, ReasonBadDeviceToken, false
	case Mismatch:
		return http.StatusBadRequest, ReasonDeviceTokenNotForTopic, false
	case Down:
		return http.StatusInternalServerError, ReasonInternalServerError, false
	case Throttled:
		return http.StatusTooManyRequests, ReasonTooManyRequests, true
	case Flaky:
		key := []byte(reqID)
		if reqID == "" {
			key = body
		}
		if s.f.flaky.first(token, key) {
			return http.StatusServiceUnavailable, ReasonServiceUnavailable, true
		}
	}
	return http.StatusOK, "", false
}

// authorize checks the provider token of an authorization header and
// returns its team id, or the 403 reason.
func (s *apnsServer) authorize(header string, now time.Time) (string, string) {
	if header == "" {
		return "", ReasonMissingProviderToken
	}
	scheme, bearer, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || bearer == "" {
		return "", ReasonInvalidProviderToken
	}
	s.mu.RLock()
	v, cached := s.verified[bearer]
	s.mu.RUnlock()
	if !cached {
		var err error
		if v, err = s.verify(bearer); err != nil {
			s.f.log.Debug("pushfake: APNs provider token refused", "err", err)
			return "", ReasonInvalidProviderToken
		}
		s.mu.Lock()
		if len(s.verified) >= maxJWTCache {
			clear(s.verified)
		}
		s.verified[bearer] = v
		s.mu.Unlock()
	}
	if v.iat.After(now.Add(apnsClockSkew)) {
		return "", ReasonInvalidProviderToken
	}
	if now.Sub(v.iat) > APNsTokenMaxAge {
		return "", ReasonExpiredProviderToken
	}
	return v.teamID, ""
}

// verify checks a provider token's signature, key id and issuer.
func (s *apnsServer) verify(bearer string) (verifiedJWT, error) {
	var claims jwt.RegisteredClaims
	var key apnsKey
	_, err := s.parser.ParseWithClaims(bearer, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := s.keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		key = k
		return k.pub, nil
	})
	if err != nil {
		return verifiedJWT{}, err
	}
	if claims.Issuer != key.teamID {
		return verifiedJWT{}, fmt.Errorf("iss %q is not the key's team %q", claims.Issuer, key.teamID)
	}
	if claims.IssuedAt == nil {
		return verifiedJWT{}, errors.New("no iat")
	}
	return verifiedJWT{teamID: key.teamID, iat: claims.IssuedAt.Time}, nil
}

// validUUID reports whether s is a UUID in its 8-4-4-4-12 hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// newUUID returns a random (version 4) UUID, upper-case as Apple's.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return strings.ToUpper(string(out[:]))
}

// validTopic reports whether topic looks like a bundle id (with an optional
// push-type suffix): letters, digits, '.', '-' and '_', no spaces.
func validTopic(topic string) bool {
	if len(topic) > 255 {
		return false
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// hasApsDictionary reports whether the valid JSON b is an object with an
// "aps" member whose value is an object. It scans b once without decoding
// it (json.Unmarshal cost more than the rest of the handler).
func hasApsDictionary(b []byte) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return false // '}' or the end: no aps
		}
		end := skipString(b, i)
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		if string(key) == "aps" {
			return i < len(b) && b[i] == '{'
		}
		i = skipValue(b, i)
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}
