package pushfake

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// fcmClient is the real firebase messaging client, loading the generated
// service-account file and pointed at the fake endpoint.
func fcmClient(t testing.TB, f *Fakes, credsPath, project string) *messaging.Client {
	t.Helper()
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project},
		option.WithCredentialsFile(credsPath), option.WithEndpoint(f.FCMEndpoint))
	if err != nil {
		t.Fatalf("firebase.NewApp: %v", err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		t.Fatalf("Messaging: %v", err)
	}
	return mc
}

func fcmMsg(tok string) *messaging.Message {
	return &messaging.Message{
		Token:        tok,
		Data:         map[string]string{"herald_id": "n1", "herald_seq": "7"},
		Notification: &messaging.Notification{Title: "Hi", Body: "there"},
		Android: &messaging.AndroidConfig{
			Priority: "high", CollapseKey: "n1", TTL: durationPtr(90 * time.Second),
			Notification: &messaging.AndroidNotification{Tag: "n1"},
		},
		APNS: &messaging.APNSConfig{Headers: map[string]string{"apns-priority": "10"},
			Payload: &messaging.APNSPayload{Aps: &messaging.Aps{ThreadID: "t"}}},
	}
}

func durationPtr(d time.Duration) *time.Duration { return &d }

func TestFCMSendsWithTheRealSDK(t *testing.T) {
	f := startFakes(t, Config{})
	acct := f.FCMAccounts[0]
	if acct.ProjectID != DevProjectID || acct.CredentialsPath == "" {
		t.Fatalf("account = %+v", acct)
	}
	raw, err := os.ReadFile(acct.CredentialsPath)
	if err != nil || !bytes.Contains(raw, []byte(f.TokenURL)) {
		t.Fatalf("service-account file lacks token_uri %s: %v", f.TokenURL, err)
	}
	mc := fcmClient(t, f, acct.CredentialsPath, acct.ProjectID)
	ctx := context.Background()
	name, err := mc.Send(ctx, fcmMsg("device-1"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !strings.HasPrefix(name, "projects/"+DevProjectID+"/messages/") {
		t.Fatalf("name = %q", name)
	}
	name, err = mc.SendDryRun(ctx, fcmMsg("device-1"))
	if err != nil || name != "projects/"+DevProjectID+"/messages/fake_message_id" {
		t.Fatalf("SendDryRun = %q, %v", name, err)
	}
	br, err := mc.SendEach(ctx, []*messaging.Message{fcmMsg("device-2"), fcmMsg("unregistered-2"), fcmMsg("device-3")})
	if err != nil {
		t.Fatalf("SendEach: %v", err)
	}
	if br.SuccessCount != 2 || br.FailureCount != 1 || !messaging.IsUnregistered(br.Responses[1].Error) {
		t.Fatalf("SendEach = %+v", br)
	}
	if n := f.AccessTokensIssued(); n != 1 {
		t.Fatalf("access tokens issued = %d, want 1 (cached by the SDK)", n)
	}
	recs := f.Received("device-1")
	if len(recs) != 2 {
		t.Fatalf("records = %+v", recs)
	}
	r := recs[0]
	var body struct {
		Message struct {
			Token   string            `json:"token"`
			Data    map[string]string `json:"data"`
			Android struct {
				TTL string `json:"ttl"`
			} `json:"android"`
		} `json:"message"`
	}
	if err := json.Unmarshal(r.Payload, &body); err != nil {
		t.Fatalf("payload %s: %v", r.Payload, err)
	}
	if r.Provider != FCM || r.Status != 200 || r.Reason != "" || body.Message.Data["herald_id"] != "n1" || body.Message.Android.TTL != "90s" {
		t.Fatalf("record = %+v, body %+v", r, body)
	}
}

func TestFCMTokenPrefixes(t *testing.T) {
	f := startFakes(t, Config{})
	mc := fcmClient(t, f, f.FCMAccounts[0].CredentialsPath, DevProjectID)
	ctx := context.Background()
	for _, tc := range []struct {
		token  string
		is     func(error) bool
		status int
		reason string
	}{
		{"unregistered-1", messaging.IsUnregistered, 404, FCMUnregistered},
		{"bad-1", messaging.IsInvalidArgument, 400, FCMInvalidArgument},
		{"down-1", messaging.IsInternal, 500, FCMInternal},
		{"mismatch-1", messaging.IsSenderIDMismatch, 403, FCMSenderIDMismatch},
		{"throttled-1", messaging.IsQuotaExceeded, 429, FCMQuotaExceeded},
		{"bad token!", messaging.IsInvalidArgument, 400, FCMInvalidArgument},
	} {
		_, err := mc.Send(ctx, fcmMsg(tc.token))
		if err == nil || !tc.is(err) {
			t.Errorf("%s: err = %v, want the SDK to classify it %s", tc.token, err, tc.reason)
		}
		recs := f.Received(tc.token)
		if len(recs) != 1 || recs[0].Status != tc.status || recs[0].Reason != tc.reason {
			t.Errorf("%s: records %+v, want one %d %s", tc.token, recs, tc.status, tc.reason)
		}
	}
}

// The SDK retries a 503 by itself, honouring Retry-After: a flaky token's
// Send succeeds on the second request.
func TestFCMFlaky(t *testing.T) {
	f := startFakes(t, Config{})
	mc := fcmClient(t, f, f.FCMAccounts[0].CredentialsPath, DevProjectID)
	if _, err := mc.Send(context.Background(), fcmMsg("flaky-1")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	recs := f.Received("flaky-1")
	if len(recs) != 2 || recs[0].Status != 503 || recs[0].Reason != FCMUnavailable || recs[1].Status != 200 {
		t.Fatalf("records = %+v, want 503 UNAVAILABLE then 200", recs)
	}
}

func TestFCMOutage(t *testing.T) {
	f := startFakes(t, Config{})
	mc := fcmClient(t, f, f.FCMAccounts[0].CredentialsPath, DevProjectID)
	ctx := context.Background()
	f.SetOutage(FCM, true)
	if _, err := mc.Send(ctx, fcmMsg("device-1")); !messaging.IsInternal(err) {
		t.Fatalf("outage: err = %v, want INTERNAL", err)
	}
	f.SetOutage(FCM, false)
	if _, err := mc.Send(ctx, fcmMsg("device-1")); err != nil {
		t.Fatalf("after outage: %v", err)
	}
}

// accessToken gets a token the way the SDK does (x/oauth2/google).
func accessToken(t *testing.T, creds []byte, scopes ...string) (*oauth2.Token, error) {
	t.Helper()
	cfg, err := google.JWTConfigFromJSON(creds, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.TokenSource(context.Background()).Token()
}

func TestFCMTokenEndpoint(t *testing.T) {
	f := startFakes(t, Config{})
	creds := f.FCMAccounts[0].CredentialsJSON
	tok, err := accessToken(t, creds, ScopeFirebaseMessaging)
	if err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("token = %+v, %v", tok, err)
	}
	oauthErr := func(err error) string {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			return "no RetrieveError"
		}
		var body struct{ Error string }
		_ = json.Unmarshal(re.Body, &body)
		return body.Error
	}
	if _, err := accessToken(t, creds, "https://www.googleapis.com/auth/userinfo.email"); oauthErr(err) != "invalid_scope" {
		t.Errorf("wrong scope: %v", err)
	}
	// Same client_email, another key: the signature does not verify.
	other, _, _, err := GenerateServiceAccount(DevProjectID, DevClientEmail, f.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accessToken(t, other, ScopeCloudPlatform); oauthErr(err) != "invalid_grant" {
		t.Errorf("other key: %v", err)
	}
	stranger, _, _, err := GenerateServiceAccount(DevProjectID, "who@example.iam.gserviceaccount.com", f.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accessToken(t, stranger, ScopeCloudPlatform); oauthErr(err) != "invalid_grant" {
		t.Errorf("unknown account: %v", err)
	}
	resp, err := http.PostForm(f.TokenURL, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("client_credentials grant: %d", resp.StatusCode)
	}
}

func TestFCMSendValidation(t *testing.T) {
	f := startFakes(t, Config{})
	tok, err := accessToken(t, f.FCMAccounts[0].CredentialsJSON, ScopeCloudPlatform)
	if err != nil {
		t.Fatal(err)
	}
	sendURL := f.FCMEndpoint + "/projects/" + DevProjectID + "/messages:send"
	for _, tc := range []struct {
		name, url, auth, body string
		status                int
		statusName, fcmCode   string
	}{
		{"ok", sendURL, tok.AccessToken, `{"message":{"token":"d1"}}`, 200, "", ""},
		{"topic", sendURL, tok.AccessToken, `{"message":{"topic":"news"}}`, 200, "", ""},
		{"no auth", sendURL, "", `{"message":{"token":"d1"}}`, 401, "UNAUTHENTICATED", ""},
		{"unknown token", sendURL, "ya29.nope", `{"message":{"token":"d1"}}`, 401, "UNAUTHENTICATED", ""},
		{"other project", f.FCMEndpoint + "/projects/someone-else/messages:send", tok.AccessToken, `{"message":{"token":"d1"}}`, 403, "PERMISSION_DENIED", ""},
		{"two targets", sendURL, tok.AccessToken, `{"message":{"token":"d1","topic":"news"}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"no target", sendURL, tok.AccessToken, `{"message":{"data":{"a":"b"}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"no message", sendURL, tok.AccessToken, `{"validate_only":true}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"unknown field", sendURL, tok.AccessToken, `{"message":{"token":"d1","tokn":"x"}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"data not string", sendURL, tok.AccessToken, `{"message":{"token":"d1","data":{"a":1}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"reserved key", sendURL, tok.AccessToken, `{"message":{"token":"d1","data":{"google.x":"1"}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"ttl", sendURL, tok.AccessToken, `{"message":{"token":"d1","android":{"ttl":"90"}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"priority", sendURL, tok.AccessToken, `{"message":{"token":"d1","android":{"priority":"urgent"}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
		{"too big", sendURL, tok.AccessToken, `{"message":{"token":"d1","data":{"a":"` + strings.Repeat("x", FCMMaxPayload) + `"}}}`, 400, "INVALID_ARGUMENT", FCMInvalidArgument},
	} {
		req, err := http.NewRequest(http.MethodPost, tc.url, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
			continue
		}
		if tc.status == 200 {
			var ok struct{ Name string }
			if json.Unmarshal(body, &ok) != nil || !strings.HasPrefix(ok.Name, "projects/"+DevProjectID+"/messages/") {
				t.Errorf("%s: %s", tc.name, body)
			}
			continue
		}
		var ge struct {
			Error struct {
				Code    int
				Status  string
				Message string
				Details []struct {
					Type      string `json:"@type"`
					ErrorCode string `json:"errorCode"`
				}
			}
		}
		if err := json.Unmarshal(body, &ge); err != nil || ge.Error.Code != tc.status || ge.Error.Status != tc.statusName || ge.Error.Message == "" {
			t.Errorf("%s: %s", tc.name, body)
		}
		code := ""
		for _, d := range ge.Error.Details {
			if d.Type == fcmErrorType {
				code = d.ErrorCode
			}
		}
		if code != tc.fcmCode {
			t.Errorf("%s: FcmError %q, want %q (%s)", tc.name, code, tc.fcmCode, body)
		}
	}
}

// Over TLS, a client trusting the fake CA for both the token endpoint and
// the sends (what a sender configured with the CA builds) works unchanged.
func TestFCMOverTLS(t *testing.T) {
	f := startFakes(t, Config{FCMTLS: true})
	if !strings.HasPrefix(f.FCMURL, "https://") || !strings.HasPrefix(f.TokenURL, "https://") {
		t.Fatalf("URLs %s, %s", f.FCMURL, f.TokenURL)
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CertPool()}, ForceAttemptHTTP2: true}
	defer base.CloseIdleConnections()
	jwtCfg, err := google.JWTConfigFromJSON(f.FCMAccounts[0].CredentialsJSON, ScopeFirebaseMessaging)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	hc := &http.Client{Transport: &oauth2.Transport{Source: jwtCfg.TokenSource(ctx), Base: base}}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: DevProjectID},
		option.WithHTTPClient(hc), option.WithEndpoint(f.FCMURL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Send(ctx, fcmMsg("device-1")); err != nil {
		t.Fatalf("Send over TLS: %v", err)
	}
	if _, err := mc.Send(ctx, fcmMsg("unregistered-1")); !messaging.IsUnregistered(err) {
		t.Fatalf("unregistered over TLS: %v", err)
	}
	// Plain HTTP to the TLS port is refused.
	if resp, err := http.Post(strings.Replace(f.TokenURL, "https", "http", 1), "text/plain", nil); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}
