package pushfake

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

const hexToken = "8c3f3a1e2b4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"

func TestAPNsDeliversAndRecords(t *testing.T) {
	f := startFakes(t, Config{})
	c := apnsClient(t, f, f.APNsKeys[0])
	n := note(hexToken)
	n.ApnsID = "3E1B2C4D-5A6B-4C7D-8E9F-0A1B2C3D4E5F"
	n.CollapseID = "n1"
	n.Expiration = time.Unix(2000000000, 0)
	res, err := c.Push(n)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.StatusCode != 200 || res.Reason != "" || res.ApnsID != n.ApnsID {
		t.Fatalf("response = %+v, want 200 with apns-id echoed", res)
	}
	// Without apns-id Apple generates one.
	res, err = c.Push(note("ok-device"))
	if err != nil || res.StatusCode != 200 || !validUUID(res.ApnsID) {
		t.Fatalf("response = %+v, %v; want 200 with a generated apns-id", res, err)
	}
	got := f.Received(hexToken)
	if len(got) != 1 {
		t.Fatalf("Received = %d records, want 1", len(got))
	}
	r := got[0]
	want := map[string]string{"apns-id": n.ApnsID, "apns-topic": DevTopic, "apns-push-type": "alert",
		"apns-priority": "10", "apns-collapse-id": "n1", "apns-expiration": "2000000000"}
	for k, v := range want {
		if r.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, r.Headers[k], v)
		}
	}
	if _, ok := r.Headers["authorization"]; ok {
		t.Error("authorization header recorded")
	}
	if r.Provider != APNs || r.Status != 200 || r.Reason != "" || !bytes.Equal(r.Payload, n.Payload.([]byte)) || r.At.IsZero() {
		t.Fatalf("record = %+v", r)
	}
	if f.Total() != 2 || len(f.Pushes()) != 2 || len(f.Delivered(hexToken)) != 1 {
		t.Fatalf("Total %d, Pushes %d, Delivered %d", f.Total(), len(f.Pushes()), len(f.Delivered(hexToken)))
	}
}

func TestAPNsTokenPrefixes(t *testing.T) {
	f := startFakes(t, Config{})
	c := apnsClient(t, f, f.APNsKeys[0])
	for _, tc := range []struct {
		token  string
		status int
		reason string
	}{
		{"unregistered-1", 410, apns2.ReasonUnregistered},
		{"bad-1", 400, apns2.ReasonBadDeviceToken},
		{"down-1", 500, apns2.ReasonInternalServerError},
		{"mismatch-1", 400, apns2.ReasonDeviceTokenNotForTopic},
		{"throttled-1", 429, apns2.ReasonTooManyRequests},
		{"anything-else", 200, ""},
	} {
		for attempt := range 2 { // the same answer every time
			res, err := c.Push(note(tc.token))
			if err != nil {
				t.Fatalf("%s: Push: %v", tc.token, err)
			}
			if res.StatusCode != tc.status || res.Reason != tc.reason || !validUUID(res.ApnsID) {
				t.Errorf("%s attempt %d: %d %q (apns-id %q), want %d %q", tc.token, attempt, res.StatusCode, res.Reason, res.ApnsID, tc.status, tc.reason)
			}
			if tc.status == 410 && time.Since(res.Timestamp.Time) > time.Minute {
				t.Errorf("410 timestamp = %v, want now", res.Timestamp.Time)
			}
		}
	}
	recs := f.Received("down-1")
	if len(recs) != 2 || recs[0].Status != 500 || recs[0].Reason != apns2.ReasonInternalServerError {
		t.Fatalf("down records = %+v", recs)
	}
}

func TestAPNsFlakyFailsFirstAttemptOnly(t *testing.T) {
	f := startFakes(t, Config{})
	c := apnsClient(t, f, f.APNsKeys[0])
	n := note("flaky-1")
	n.ApnsID = "11111111-2222-4333-8444-555555555555"
	want := []int{503, 200, 200}
	for i, w := range want {
		res, err := c.Push(n)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != w {
			t.Fatalf("attempt %d: %d %q, want %d", i, res.StatusCode, res.Reason, w)
		}
		if w == 503 && res.Reason != apns2.ReasonServiceUnavailable {
			t.Fatalf("503 reason %q", res.Reason)
		}
	}
	// Another notification to the same token fails once again.
	n2 := note("flaky-1")
	n2.ApnsID = "11111111-2222-4333-8444-666666666666"
	if res, _ := c.Push(n2); res == nil || res.StatusCode != 503 {
		t.Fatalf("new notification: %+v, want 503", res)
	}
	// Retry-After: 1 on the wire.
	rt := f.APNsTransport()
	defer rt.CloseIdleConnections()
	req := rawRequest(t, f, "flaky-2", `{"aps":{}}`)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("apns-id") == "" {
		t.Fatalf("flaky raw: %d, headers %v", resp.StatusCode, resp.Header)
	}
}

func TestAPNsValidation(t *testing.T) {
	f := startFakes(t, Config{})
	c := apnsClient(t, f, f.APNsKeys[0])
	big := `{"aps":{"alert":"` + strings.Repeat("x", APNsMaxPayload) + `"}}`
	voip := `{"aps":{},"x":"` + strings.Repeat("x", APNsMaxPayload) + `"}`
	for _, tc := range []struct {
		name   string
		edit   func(n *apns2.Notification)
		status int
		reason string
	}{
		{"priority", func(n *apns2.Notification) { n.Priority = 7 }, 400, apns2.ReasonBadPriority},
		{"priority 5", func(n *apns2.Notification) { n.Priority = 5 }, 200, ""},
		{"collapse id", func(n *apns2.Notification) { n.CollapseID = strings.Repeat("c", 65) }, 400, apns2.ReasonBadCollapseID},
		{"collapse id 64", func(n *apns2.Notification) { n.CollapseID = strings.Repeat("c", 64) }, 200, ""},
		{"apns-id", func(n *apns2.Notification) { n.ApnsID = "not-a-uuid" }, 400, apns2.ReasonBadMessageID},
		{"missing topic", func(n *apns2.Notification) { n.Topic = "" }, 400, apns2.ReasonMissingTopic},
		{"bad topic", func(n *apns2.Notification) { n.Topic = "dev herald" }, 400, apns2.ReasonBadTopic},
		{"other topic", func(n *apns2.Notification) { n.Topic = "com.example.other" }, 400, apns2.ReasonTopicDisallowed},
		{"voip topic", func(n *apns2.Notification) { n.PushType = apns2.PushTypeVOIP; n.Topic = DevTopic + ".voip" }, 200, ""},
		{"voip without suffix", func(n *apns2.Notification) { n.PushType = apns2.PushTypeVOIP }, 400, apns2.ReasonTopicDisallowed},
		{"push type", func(n *apns2.Notification) { n.PushType = "carrier-pigeon" }, 400, apns2.ReasonInvalidPushType},
		{"too large", func(n *apns2.Notification) { n.Payload = []byte(big) }, 413, apns2.ReasonPayloadTooLarge},
		{"voip may be 5120", func(n *apns2.Notification) {
			n.PushType, n.Topic, n.Payload = apns2.PushTypeVOIP, DevTopic+".voip", []byte(voip)
		}, 200, ""},
		{"no aps", func(n *apns2.Notification) { n.Payload = []byte(`{"alert":"x"}`) }, 400, ReasonBadPayload},
		{"aps not a dictionary", func(n *apns2.Notification) { n.Payload = []byte(`{"aps":"x"}`) }, 400, ReasonBadPayload},
	} {
		n := note(hexToken)
		tc.edit(n)
		res, err := c.Push(n)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.StatusCode != tc.status || res.Reason != tc.reason {
			t.Errorf("%s: %d %q, want %d %q", tc.name, res.StatusCode, res.Reason, tc.status, tc.reason)
		}
	}
}

// rawRequest is a request as apns2 sends it, signed with the dev key, for
// the checks apns2 cannot be made to trip.
func rawRequest(t *testing.T, f *Fakes, tok, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.APNsURL+"/3/device/"+tok, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("authorization", "bearer "+devBearer(t, f, time.Now()))
	req.Header.Set("apns-topic", DevTopic)
	req.Header.Set("apns-push-type", "alert")
	return req
}

func devBearer(t testing.TB, f *Fakes, iat time.Time) string {
	t.Helper()
	k := f.APNsKeys[0]
	return signAPNs(t, k.KeyPEM, k.KeyID, k.TeamID, iat)
}

func signAPNs(t testing.TB, p8 []byte, kid, iss string, iat time.Time) string {
	t.Helper()
	key, err := token.AuthKeyFromBytes(p8)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": iss, "iat": iat.Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPNsRawChecks(t *testing.T) {
	f := startFakes(t, Config{})
	rt := f.APNsTransport()
	defer rt.CloseIdleConnections()
	other, _, err := GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	k := f.APNsKeys[0]
	for _, tc := range []struct {
		name   string
		edit   func(r *http.Request)
		status int
		reason string
	}{
		{"ok", func(*http.Request) {}, 200, ""},
		{"expiration", func(r *http.Request) { r.Header.Set("apns-expiration", "soon") }, 400, apns2.ReasonBadExpirationDate},
		{"expiration 0", func(r *http.Request) { r.Header.Set("apns-expiration", "0") }, 200, ""},
		{"duplicate", func(r *http.Request) { r.Header.Add("apns-topic", DevTopic) }, 400, apns2.ReasonDuplicateHeaders},
		{"no token", func(r *http.Request) { r.Header.Del("authorization") }, 403, apns2.ReasonMissingProviderToken},
		{"not bearer", func(r *http.Request) { r.Header.Set("authorization", "basic abc") }, 403, apns2.ReasonInvalidProviderToken},
		{"garbage", func(r *http.Request) { r.Header.Set("authorization", "bearer abc.def.ghi") }, 403, apns2.ReasonInvalidProviderToken},
		{"other key", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, other, k.KeyID, k.TeamID, time.Now()))
		}, 403, apns2.ReasonInvalidProviderToken},
		{"unknown kid", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, k.KeyPEM, "NOSUCHKEY1", k.TeamID, time.Now()))
		}, 403, apns2.ReasonInvalidProviderToken},
		{"other team", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, k.KeyPEM, k.KeyID, "OTHERTEAM1", time.Now()))
		}, 403, apns2.ReasonInvalidProviderToken},
		{"expired", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, k.KeyPEM, k.KeyID, k.TeamID, time.Now().Add(-61*time.Minute)))
		}, 403, apns2.ReasonExpiredProviderToken},
		{"59 minutes", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, k.KeyPEM, k.KeyID, k.TeamID, time.Now().Add(-59*time.Minute)))
		}, 200, ""},
		{"future", func(r *http.Request) {
			r.Header.Set("authorization", "bearer "+signAPNs(t, k.KeyPEM, k.KeyID, k.TeamID, time.Now().Add(time.Hour)))
		}, 403, apns2.ReasonInvalidProviderToken},
		{"method", func(r *http.Request) { r.Method = http.MethodGet }, 405, apns2.ReasonMethodNotAllowed},
		{"path", func(r *http.Request) { r.URL.Path = "/3/devices/x" }, 404, apns2.ReasonBadPath},
		{"missing device token", func(r *http.Request) { r.URL.Path = "/3/device/" }, 400, apns2.ReasonMissingDeviceToken},
		{"not JSON", func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(`{"aps":`)), 7
		}, 400, ReasonBadPayload},
		{"empty", func(r *http.Request) { r.Body, r.ContentLength = http.NoBody, 0 }, 400, apns2.ReasonPayloadEmpty},
		{"token characters", func(r *http.Request) { r.URL.Path = "/3/device/a%20b" }, 400, apns2.ReasonBadDeviceToken},
	} {
		req := rawRequest(t, f, hexToken, `{"aps":{"alert":"x"}}`)
		tc.edit(req)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !validUUID(resp.Header.Get("apns-id")) {
			t.Errorf("%s: apns-id %q", tc.name, resp.Header.Get("apns-id"))
		}
		if tc.status == 200 {
			if resp.StatusCode != 200 || len(body) != 0 {
				t.Errorf("%s: %d %q, want 200 and an empty body", tc.name, resp.StatusCode, body)
			}
			continue
		}
		var got struct{ Reason string }
		if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != tc.status || got.Reason != tc.reason {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.reason)
		}
	}
}

func TestAPNsIsHTTP2Only(t *testing.T) {
	f := startFakes(t, Config{})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CertPool(), NextProtos: []string{"http/1.1"}}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(f.APNsURL+"/3/device/"+hexToken, "application/json", strings.NewReader(`{"aps":{}}`))
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("HTTP/1.1 request answered %d, want the connection refused", resp.StatusCode)
	}
}

func TestAPNsStrictTokensAndOutage(t *testing.T) {
	f := startFakes(t, Config{StrictTokens: true})
	c := apnsClient(t, f, f.APNsKeys[0])
	for tok, want := range map[string]int{hexToken: 200, "ok-device": 400, "abc": 400, "unregistered-x": 410} {
		res, err := c.Push(note(tok))
		if err != nil || res.StatusCode != want {
			t.Errorf("%s: %+v %v, want %d", tok, res, err, want)
		}
	}
	f.SetOutage(APNs, true)
	for range 3 {
		res, err := c.Push(note(hexToken))
		if err != nil || res.StatusCode != 503 || res.Reason != apns2.ReasonServiceUnavailable {
			t.Fatalf("outage: %+v %v, want 503 ServiceUnavailable", res, err)
		}
	}
	f.SetOutage("", false)
	if res, err := c.Push(note(hexToken)); err != nil || res.StatusCode != 200 {
		t.Fatalf("after outage: %+v %v", res, err)
	}
}

func TestAPNsConfiguredKey(t *testing.T) {
	p8, _, err := GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := APNsPublicKey(p8)
	if err != nil {
		t.Fatal(err)
	}
	f := startFakes(t, Config{APNsApps: []APNsApp{
		{TeamID: "TEAM000001", KeyID: "KEY0000001", Topic: "com.example.a", PublicKey: pub},
		{TeamID: "TEAM000001", KeyID: "KEY0000001", Topic: "com.example.b", PublicKey: pub},
	}})
	if len(f.APNsKeys) != 0 {
		t.Fatalf("generated %d keys for apps that have one", len(f.APNsKeys))
	}
	c := apnsClient(t, f, APNsCredentials{TeamID: "TEAM000001", KeyID: "KEY0000001", KeyPEM: p8})
	for topic, want := range map[string]int{"com.example.a": 200, "com.example.b": 200, DevTopic: 400} {
		n := note(hexToken)
		n.Topic = topic
		if res, err := c.Push(n); err != nil || res.StatusCode != want {
			t.Errorf("%s: %+v %v, want %d", topic, res, err, want)
		}
	}
}

func TestRecordRingAndHandler(t *testing.T) {
	f := startFakes(t, Config{RecordLimit: 3})
	c := apnsClient(t, f, f.APNsKeys[0])
	for _, tok := range []string{"a-1", "a-2", "unregistered-3", "a-4"} {
		if _, err := c.Push(note(tok)); err != nil {
			t.Fatal(err)
		}
	}
	if f.Total() != 4 {
		t.Fatalf("Total = %d", f.Total())
	}
	srv := f.Handler()
	rr := &recorderWriter{header: http.Header{}}
	srv.ServeHTTP(rr, httptestRequest(t))
	var got struct {
		Pushes []map[string]any `json:"pushes"`
	}
	if err := json.Unmarshal(rr.body.Bytes(), &got); err != nil {
		t.Fatalf("%s: %v", rr.body.Bytes(), err)
	}
	if len(got.Pushes) != 3 {
		t.Fatalf("pushes = %d, want the last 3", len(got.Pushes))
	}
	for i, tok := range []string{"a-2", "unregistered-3", "a-4"} {
		p := got.Pushes[i]
		if p["token"] != tok || p["provider"] != "apns" {
			t.Errorf("push %d = %v, want token %s", i, p, tok)
		}
		for _, k := range []string{"provider", "token", "status", "reason", "headers", "payload", "at"} {
			if _, ok := p[k]; !ok {
				t.Errorf("push %d lacks %q", i, k)
			}
		}
	}
	if got.Pushes[1]["status"] != float64(410) || got.Pushes[1]["reason"] != "Unregistered" {
		t.Errorf("push 1 = %v", got.Pushes[1])
	}
	f.Reset()
	if len(f.Pushes()) != 0 {
		t.Fatal("Reset kept records")
	}
}

type recorderWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorderWriter) Header() http.Header         { return w.header }
func (w *recorderWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *recorderWriter) WriteHeader(s int)           { w.status = s }

func httptestRequest(t *testing.T) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "/v1/dev/pushes", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHasApsDictionary(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"aps":{}}`, true},
		{` { "x" : [1,{"aps":{}}], "y":"a\"ps", "aps" : {"alert":"x"} }`, true},
		{`{"x":{"aps":{}}}`, false},
		{`{"x":"aps","y":{}}`, false},
		{`{"aps":[]}`, false},
		{`{"aps":"{"}`, false},
		{`{"a":1,"b":true,"c":null,"aps":{"k":1}}`, true},
		{`[]`, false},
		{`{}`, false},
		{`{"a\\":1,"aps":{}}`, true},
	} {
		body, want := tc.body, tc.want
		if !json.Valid([]byte(body)) {
			t.Fatalf("test body %s is not JSON", body)
		}
		if got := hasApsDictionary([]byte(body)); got != want {
			t.Errorf("hasApsDictionary(%s) = %v, want %v", body, got, want)
		}
	}
}

// A provider token verified once (and cached) still expires an hour after
// its iat.
func TestAPNsCachedTokenExpires(t *testing.T) {
	var offset atomic.Int64
	f := startFakes(t, Config{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	c := apnsClient(t, f, f.APNsKeys[0])
	if res, err := c.Push(note(hexToken)); err != nil || res.StatusCode != 200 {
		t.Fatalf("fresh token: %+v %v", res, err)
	}
	offset.Store(int64(61 * time.Minute))
	res, err := c.Push(note(hexToken)) // apns2 keeps its token for 50 minutes of its own clock
	if err != nil || res.StatusCode != 403 || res.Reason != apns2.ReasonExpiredProviderToken {
		t.Fatalf("an hour later: %+v %v, want 403 ExpiredProviderToken", res, err)
	}
}
