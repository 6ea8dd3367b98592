package fcm_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/fcm"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/internal/errclass"
)

// TestAgainstPushfake sends every token prefix to the in-tree fake FCM,
// which checks the OAuth2 assertion, the access token and the message.
func TestAgainstPushfake(t *testing.T) {
	f, err := pushfake.Start(context.Background(), pushfake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	acct := f.FCMAccounts[0]
	s, err := fcm.New(context.Background(), fcm.Config{App: push.FCMApp{Credentials: acct.CredentialsJSON, Endpoint: f.FCMURL, CA: f.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Project() != acct.ProjectID {
		t.Fatalf("project %q, want %q", s.Project(), acct.ProjectID)
	}
	toks := []string{"ok-1", "unregistered-1", "bad-1", "flaky-1", "down-1", "ok-ios"}
	msgs := make([]push.Message, len(toks))
	for i, tok := range toks {
		msgs[i] = push.Message{
			UserID: "u1",
			Device: herald.Device{Platform: "android", Token: tok, AppID: "dev"},
			Notification: herald.Notification{
				ID: "01JNOTIFICATION0000000000C", Seq: 9, EventID: "ev-9", Type: "mention",
				Priority: herald.PriorityNormal, Title: "Hi", Body: "there", Data: json.RawMessage(`{"k":"v"}`),
			},
			CollapseKey: "c1",
			ExpiresAt:   time.Now().Add(time.Hour),
			Badge:       1,
		}
	}
	msgs[5].Device.Platform = "ios"
	res := s.Send(context.Background(), msgs)
	type want struct {
		sent, dead bool
		class      errclass.Class
		reason     string
	}
	for i, w := range []want{
		{sent: true},
		{dead: true, class: errclass.ClassPermanent, reason: push.FCMUnregistered},
		{dead: true, class: errclass.ClassPermanent, reason: push.FCMInvalidArgument},
		{class: errclass.ClassTransient, reason: push.FCMUnavailable},
		{class: errclass.ClassTransient, reason: push.FCMInternal},
		{sent: true},
	} {
		r := res[i]
		if r.Sent != w.sent || r.TokenDead != w.dead || (!w.sent && (r.Class != w.class || r.Reason != w.reason)) {
			t.Errorf("%s: %+v, want %+v", toks[i], r, w)
		}
	}
	if n := len(f.Received("flaky-1")); n != 1 {
		t.Fatalf("flaky-1: %d requests, want 1 (no retry inside the SDK)", n)
	}
	if r := s.Send(context.Background(), msgs[3:4])[0]; !r.Sent {
		t.Fatalf("flaky retry: %+v", r)
	}
	if n := f.AccessTokensIssued(); n != 1 {
		t.Errorf("%d access tokens issued, want 1", n)
	}
}
