package pushfake

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

func startFakes(t testing.TB, cfg Config) *Fakes {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// apnsClient is the real apns2 token client pointed at the fake.
func apnsClient(t testing.TB, f *Fakes, creds APNsCredentials) *apns2.Client {
	t.Helper()
	key, err := token.AuthKeyFromBytes(creds.KeyPEM)
	if err != nil {
		t.Fatalf("AuthKeyFromBytes: %v", err)
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: creds.KeyID, TeamID: creds.TeamID})
	c.Host = f.APNsURL
	tr := f.APNsTransport()
	c.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

func note(tok string) *apns2.Notification {
	return &apns2.Notification{
		DeviceToken: tok,
		Topic:       DevTopic,
		Payload:     []byte(`{"aps":{"alert":{"title":"Hi","body":"there"}},"herald_id":"n1"}`),
		Priority:    apns2.PriorityHigh,
		PushType:    apns2.PushTypeAlert,
	}
}
