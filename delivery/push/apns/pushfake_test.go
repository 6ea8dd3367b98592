package apns_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/apns"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/internal/errclass"
)

func startFakes(t testing.TB) *pushfake.Fakes {
	f, err := pushfake.Start(context.Background(), pushfake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func fakeSender(t testing.TB, f *pushfake.Fakes, cfg apns.Config) *apns.Sender {
	k := f.APNsKeys[0]
	cfg.App = push.APNsApp{Key: k.KeyPEM, KeyID: k.KeyID, TeamID: k.TeamID, Topic: k.Topic, Endpoint: f.APNsURL, CA: f.CAPEM}
	s, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func fakeMsg(token string) push.Message {
	return push.Message{
		UserID: "u1",
		Device: herald.Device{Platform: "ios", Token: token, AppID: "dev"},
		Notification: herald.Notification{
			ID: "01JNOTIFICATION0000000000B", Seq: 7, EventID: "ev-7", Type: "mention",
			Priority: herald.PriorityHigh, Title: "Hi", Body: "there", Data: json.RawMessage(`{"k":"v"}`),
		},
		ExpiresAt: time.Now().Add(time.Hour),
		Badge:     1,
	}
}

// TestAgainstPushfake sends every token prefix to the in-tree fake APNs,
// which checks the provider JWT, the path, the headers and the payload.
func TestAgainstPushfake(t *testing.T) {
	f := startFakes(t)
	s := fakeSender(t, f, apns.Config{})
	toks := []string{"ok-1", "unregistered-1", "bad-1", "flaky-1", "down-1"}
	msgs := make([]push.Message, len(toks))
	for i, tok := range toks {
		msgs[i] = fakeMsg(tok)
	}
	res := s.Send(context.Background(), msgs)
	type want struct {
		sent, dead bool
		class      errclass.Class
		reason     string
		retryAfter time.Duration
	}
	for i, w := range []want{
		{sent: true},
		{dead: true, class: errclass.ClassPermanent, reason: "Unregistered"},
		{dead: true, class: errclass.ClassPermanent, reason: "BadDeviceToken"},
		{class: errclass.ClassTransient, reason: "ServiceUnavailable", retryAfter: time.Second},
		{class: errclass.ClassTransient, reason: "InternalServerError"},
	} {
		r := res[i]
		if r.Sent != w.sent || r.TokenDead != w.dead || (!w.sent && (r.Class != w.class || r.Reason != w.reason)) || r.RetryAfter != w.retryAfter {
			t.Errorf("%s: %+v, want %+v", toks[i], r, w)
		}
	}
	// The retry of the flaky token goes through, with the same apns-id.
	if r := s.Send(context.Background(), msgs[3:4])[0]; !r.Sent {
		t.Fatalf("flaky retry: %+v", r)
	}
	got := f.Received("flaky-1")
	if len(got) != 2 || got[0].Headers["apns-id"] != got[1].Headers["apns-id"] || got[1].Headers["apns-id"] != apns.APNsID(&msgs[3]) {
		t.Fatalf("flaky records: %+v", got)
	}
	ok := f.Delivered("ok-1")
	if len(ok) != 1 {
		t.Fatalf("ok-1 delivered %d times", len(ok))
	}
	h := ok[0].Headers
	if h["apns-priority"] != "10" || h["apns-push-type"] != "alert" || h["apns-collapse-id"] != msgs[0].Notification.ID || h["apns-topic"] != f.APNsKeys[0].Topic {
		t.Errorf("headers: %v", h)
	}
}
