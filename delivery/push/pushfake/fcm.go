package pushfake

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OAuth2 and FCM constants of the fake.
const (
	// JWTBearerGrant is the grant_type of the service-account flow.
	JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// ScopeFirebaseMessaging and ScopeCloudPlatform are the scopes that
	// allow sending; an assertion must ask for one of them.
	ScopeFirebaseMessaging = "https://www.googleapis.com/auth/firebase.messaging"
	ScopeCloudPlatform     = "https://www.googleapis.com/auth/cloud-platform"
	// AccessTokenLifetime is the expires_in of an issued access token.
	AccessTokenLifetime = time.Hour
	// FCMMaxPayload bounds the data and notification of a message, as FCM
	// does (measured on their JSON, so slightly stricter than Google).
	FCMMaxPayload = 4096
	// fcmMaxBody bounds a send request's body.
	fcmMaxBody = 64 << 10
	// maxAccessTokens bounds the live access tokens the fake remembers.
	maxAccessTokens = 10000
	// fcmErrorType is the @type of the FCM error detail the SDK reads.
	fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
)

// FCM error codes (FcmError.errorCode) the fake answers.
const (
	FCMUnregistered      = "UNREGISTERED"
	FCMInvalidArgument   = "INVALID_ARGUMENT"
	FCMSenderIDMismatch  = "SENDER_ID_MISMATCH"
	FCMQuotaExceeded     = "QUOTA_EXCEEDED"
	FCMUnavailable       = "UNAVAILABLE"
	FCMInternal          = "INTERNAL"
	FCMUnauthenticated   = "UNAUTHENTICATED"
	FCMPermissionDenied  = "PERMISSION_DENIED"
	fcmDryRunMessageName = "fake_message_id"
)

type fcmAccount struct {
	projectID string
	keyID     string
	pub       *rsa.PublicKey
}

type accessGrant struct {
	projectID string
	expires   time.Time
}

type fcmServer struct {
	f        *Fakes
	accounts map[string]fcmAccount // by client email
	projects map[string]bool
	parser   *jwt.Parser
	seq      atomic.Uint64

	mu     sync.Mutex
	grants map[string]accessGrant // access token → grant
	issued atomic.Uint64
}

func newFCMServer(f *Fakes, apps []FCMApp) *fcmServer {
	s := &fcmServer{
		f:        f,
		accounts: make(map[string]fcmAccount),
		projects: make(map[string]bool),
		parser:   jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation()),
		grants:   make(map[string]accessGrant),
	}
	s.seq.Store(uint64(time.Now().UnixMicro()))
	for _, a := range apps {
		s.accounts[a.ClientEmail] = fcmAccount{projectID: a.ProjectID, keyID: a.KeyID, pub: a.PublicKey}
		s.projects[a.ProjectID] = true
	}
	return s
}

func (s *fcmServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/token":
		s.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/projects/") && strings.HasSuffix(r.URL.Path, "/messages:send"):
		s.serveSend(w, r)
	default:
		writeGoogleError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL "+r.URL.Path+" was not found on this server.", "", nil)
	}
}

// oauthClaims is the claim set of a service-account assertion.
type oauthClaims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// serveToken is Google's OAuth2 token endpoint for the JWT-bearer grant.
func (s *fcmServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "Only POST is supported.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != JWTBearerGrant {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+g)
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: assertion")
		return
	}
	var claims oauthClaims
	var acct fcmAccount
	_, err := s.parser.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		a, ok := s.accounts[claims.Issuer]
		if !ok {
			return nil, fmt.Errorf("unknown service account %q", claims.Issuer)
		}
		if kid, _ := t.Header["kid"].(string); kid != "" && kid != a.keyID {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		acct = a
		return a.pub, nil
	})
	if err != nil {
		s.f.log.Debug("pushfake: FCM assertion refused", "err", err)
		if _, known := s.accounts[claims.Issuer]; !known && claims.Issuer != "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid grant: account not found")
			return
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := s.f.now()
	audOK := false
	for _, a := range claims.Audience {
		audOK = audOK || a == s.f.TokenURL
	}
	if !audOK {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: Failed audience check.")
		return
	}
	if claims.IssuedAt == nil || claims.ExpiresAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > time.Hour ||
		claims.IssuedAt.After(now.Add(apnsClockSkew)) || !claims.ExpiresAt.After(now) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return
	}
	scoped := false
	for _, sc := range strings.Fields(claims.Scope) {
		scoped = scoped || sc == ScopeFirebaseMessaging || sc == ScopeCloudPlatform
	}
	if !scoped {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "The assertion asks for no scope that allows sending messages (firebase.messaging or cloud-platform).")
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	access := "ya29.fake-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	if len(s.grants) >= maxAccessTokens {
		for k, g := range s.grants {
			if !g.expires.After(now) {
				delete(s.grants, k)
			}
		}
	}
	if len(s.grants) >= maxAccessTokens {
		s.mu.Unlock()
		writeOAuthError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Too many live access tokens.")
		return
	}
	s.grants[access] = accessGrant{projectID: acct.projectID, expires: now.Add(AccessTokenLifetime)}
	s.mu.Unlock()
	s.issued.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access,
		"expires_in":   int(AccessTokenLifetime/time.Second) - 1,
		"token_type":   "Bearer",
	})
}

// googleError is the JSON of a Google API error.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []any  `json:"details,omitempty"`
	} `json:"error"`
}

// writeGoogleError answers Google's error JSON; fcmCode adds the FcmError
// detail and extra any further details.
func writeGoogleError(w http.ResponseWriter, status int, statusName, msg, fcmCode string, extra []any) {
	var e googleError
	e.Error.Code, e.Error.Message, e.Error.Status = status, msg, statusName
	if fcmCode != "" {
		e.Error.Details = append(e.Error.Details, map[string]string{"@type": fcmErrorType, "errorCode": fcmCode})
	}
	e.Error.Details = append(e.Error.Details, extra...)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// fcmAnswer is what a send is answered.
type fcmAnswer struct {
	status     int
	statusName string
	msg        string
	fcmCode    string
	extra      []any
	retryAfter bool
}

func badRequest(msg string, field string) fcmAnswer {
	a := fcmAnswer{status: http.StatusBadRequest, statusName: "INVALID_ARGUMENT", msg: msg, fcmCode: FCMInvalidArgument}
	if field != "" {
		a.extra = []any{map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []map[string]string{{"field": field, "description": msg}},
		}}
	}
	return a
}

func (s *fcmServer) serveSend(w http.ResponseWriter, r *http.Request) {
	now := s.f.now()
	rec := Record{Provider: FCM, At: now, Headers: map[string]string{}}
	if v := r.Header.Get("X-Goog-Api-Format-Version"); v != "" {
		rec.Headers["x-goog-api-format-version"] = v
	}
	name, a := s.send(r, now, &rec)
	rec.Status = a.status
	if a.status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_, _ = fmt.Fprintf(w, "{\n  \"name\": %q\n}\n", name)
	} else {
		rec.Reason = a.fcmCode
		if rec.Reason == "" {
			rec.Reason = a.statusName
		}
		if a.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
		writeGoogleError(w, a.status, a.statusName, a.msg, a.fcmCode, a.extra)
	}
	s.f.rec.add(rec)
}

// fcmMessage is the v1 Message; the blocks the fake does not check stay raw.
type fcmMessage struct {
	Name         string            `json:"name"`
	Data         map[string]string `json:"data"`
	Notification json.RawMessage   `json:"notification"`
	Android      json.RawMessage   `json:"android"`
	Webpush      json.RawMessage   `json:"webpush"`
	APNs         json.RawMessage   `json:"apns"`
	FCMOptions   json.RawMessage   `json:"fcm_options"`
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
}

type fcmAndroid struct {
	CollapseKey  string            `json:"collapse_key"`
	Priority     string            `json:"priority"`
	TTL          string            `json:"ttl"`
	Data         map[string]string `json:"data"`
	Notification json.RawMessage   `json:"notification"`
}

type fcmAPNs struct {
	Headers map[string]string `json:"headers"`
	Payload json.RawMessage   `json:"payload"`
}

var (
	ttlPattern   = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,9})?s$`)
	topicPattern = regexp.MustCompile(`^[a-zA-Z0-9\-_.~%]{1,900}$`)
)

func (s *fcmServer) send(r *http.Request, now time.Time, rec *Record) (string, fcmAnswer) {
	if r.Method != http.MethodPost {
		return "", fcmAnswer{status: http.StatusMethodNotAllowed, statusName: "METHOD_NOT_ALLOWED", msg: "Only POST is supported."}
	}
	project := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/"), "/messages:send")
	if s.f.outage(FCM) {
		return "", fcmAnswer{status: http.StatusInternalServerError, statusName: "INTERNAL", msg: "Internal error encountered.", fcmCode: FCMInternal}
	}
	scheme, access, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || access == "" {
		return "", fcmAnswer{status: http.StatusUnauthorized, statusName: FCMUnauthenticated,
			msg: "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential."}
	}
	s.mu.Lock()
	g, ok := s.grants[access]
	s.mu.Unlock()
	if !ok || !g.expires.After(now) {
		return "", fcmAnswer{status: http.StatusUnauthorized, statusName: FCMUnauthenticated,
			msg: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}
	}
	if g.projectID != project || !s.projects[project] {
		return "", fcmAnswer{status: http.StatusForbidden, statusName: FCMPermissionDenied,
			msg:   fmt.Sprintf("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/%s' (or it may not exist).", project),
			extra: []any{map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED", "domain": "cloudresourcemanager.googleapis.com"}}}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fcmMaxBody+1))
	if err != nil || len(body) > fcmMaxBody {
		return "", badRequest("Request body too large or unreadable.", "")
	}
	if json.Valid(body) {
		rec.Payload = body
	}
	var req struct {
		ValidateOnly bool            `json:"validate_only"`
		Message      json.RawMessage `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", badRequest("Invalid JSON payload received. "+err.Error(), "")
	}
	if len(req.Message) == 0 || req.Message[0] != '{' {
		return "", badRequest("Request contains an invalid argument: message is required.", "message")
	}
	var m fcmMessage
	dec = json.NewDecoder(bytes.NewReader(req.Message))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return "", badRequest("Invalid JSON payload received. "+err.Error(), "message")
	}
	rec.Token = m.Token
	if a, bad := checkMessage(&m); bad {
		return "", a
	}
	if m.Token != "" {
		if !tokenOK(m.Token, s.f.cfg.StrictTokens) {
			return "", badRequest("The registration token is not a valid FCM registration token", "message.token")
		}
		behaviour := s.f.behaviourOf(m.Token)
		switch behaviour {
		case Unregistered:
			return "", fcmAnswer{status: http.StatusNotFound, statusName: "NOT_FOUND", msg: "Requested entity was not found.", fcmCode: FCMUnregistered}
		case BadToken:
			return "", badRequest("The registration token is not a valid FCM registration token", "message.token")
		case Mismatch:
			return "", fcmAnswer{status: http.StatusForbidden, statusName: FCMPermissionDenied, msg: "SenderId mismatch", fcmCode: FCMSenderIDMismatch}
		case Down:
			return "", fcmAnswer{status: http.StatusInternalServerError, statusName: "INTERNAL", msg: "Internal error encountered.", fcmCode: FCMInternal}
		case Throttled:
			return "", fcmAnswer{status: http.StatusTooManyRequests, statusName: "RESOURCE_EXHAUSTED", msg: "Quota exceeded for sending messages to this device.", fcmCode: FCMQuotaExceeded, retryAfter: true}
		case Flaky:
			if s.f.flaky.first(m.Token, req.Message) {
				return "", fcmAnswer{status: http.StatusServiceUnavailable, statusName: "UNAVAILABLE", msg: "The service is currently unavailable.", fcmCode: FCMUnavailable, retryAfter: true}
			}
		}
	}
	if req.ValidateOnly {
		return "projects/" + project + "/messages/" + fcmDryRunMessageName, fcmAnswer{status: http.StatusOK}
	}
	return "projects/" + project + "/messages/" + strconv.FormatUint(s.seq.Add(1), 10), fcmAnswer{status: http.StatusOK}
}

// checkMessage applies FCM's message rules; bad is true with the answer
// when one is broken.
func checkMessage(m *fcmMessage) (fcmAnswer, bool) {
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return badRequest("Exactly one of message.token, message.topic or message.condition must be specified.", "message"), true
	}
	if m.Topic != "" && !topicPattern.MatchString(strings.TrimPrefix(m.Topic, "/topics/")) {
		return badRequest("Invalid topic name.", "message.topic"), true
	}
	if a, bad := checkData(m.Data, "message.data"); bad {
		return a, true
	}
	size := len(m.Notification)
	for k, v := range m.Data {
		size += len(k) + len(v)
	}
	if len(m.Android) > 0 {
		var an fcmAndroid
		if err := json.Unmarshal(m.Android, &an); err != nil {
			return badRequest("Invalid JSON payload received. "+err.Error(), "message.android"), true
		}
		switch an.Priority {
		case "", "normal", "high", "NORMAL", "HIGH":
		default:
			return badRequest("Invalid value at 'message.android.priority': "+an.Priority, "message.android.priority"), true
		}
		if an.TTL != "" && !ttlPattern.MatchString(an.TTL) {
			return badRequest("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'", "message.android.ttl"), true
		}
		if a, bad := checkData(an.Data, "message.android.data"); bad {
			return a, true
		}
		size += len(an.Notification)
		for k, v := range an.Data {
			size += len(k) + len(v)
		}
	}
	if len(m.APNs) > 0 {
		var ap fcmAPNs
		if err := json.Unmarshal(m.APNs, &ap); err != nil {
			return badRequest("Invalid JSON payload received. "+err.Error(), "message.apns"), true
		}
		if len(ap.Payload) > 0 && ap.Payload[0] != '{' {
			return badRequest("Invalid APNs payload.", "message.apns.payload"), true
		}
		if len(ap.Payload) > APNsMaxPayload {
			return badRequest("APNs payload is too big.", "message.apns.payload"), true
		}
	}
	if size > FCMMaxPayload {
		return badRequest("Android message is too big", "message"), true
	}
	return fcmAnswer{}, false
}

// checkData refuses the data keys FCM reserves.
func checkData(data map[string]string, field string) (fcmAnswer, bool) {
	for k := range data {
		if k == "" || k == "from" || k == "message_type" || strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.") {
			return badRequest("Invalid data payload key: "+k, field), true
		}
	}
	return fcmAnswer{}, false
}
