package pushfake

import (
	"context"
	"net/http"
	"testing"
)

// A healed token answers 200 on both fakes from then on, whatever its
// prefix; other tokens keep theirs.
func TestHeal(t *testing.T) {
	f := startFakes(t, Config{})
	ac := apnsClient(t, f, f.APNsKeys[0])
	mc := fcmClient(t, f, f.FCMAccounts[0].CredentialsPath, DevProjectID)
	ctx := context.Background()
	apns := func(tok string) int {
		t.Helper()
		res, err := ac.PushWithContext(ctx, note(tok))
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if got := apns("down-h"); got != http.StatusInternalServerError {
		t.Fatalf("down- before Heal: %d", got)
	}
	if _, err := mc.Send(ctx, fcmMsg("down-h")); err == nil {
		t.Fatal("FCM down- before Heal succeeded")
	}
	f.Heal("down-h")
	if got := apns("down-h"); got != http.StatusOK {
		t.Errorf("down- after Heal: %d", got)
	}
	if _, err := mc.Send(ctx, fcmMsg("down-h")); err != nil {
		t.Errorf("FCM down- after Heal: %v", err)
	}
	if got := apns("down-other"); got != http.StatusInternalServerError {
		t.Errorf("another down- token after Heal: %d", got)
	}
}
