package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/app/config"
)

// startDevWith starts herald dev with the settings of the YAML config
// file body (written to the data dir), as `herald dev --config` would.
func startDevFile(t *testing.T, dir, body string) *Dev {
	t.Helper()
	path := filepath.Join(dir, "herald.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.New("dev", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Parse([]string{"--config", path}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc := DevConfigFrom(cfg)
	dc.DataDir, dc.Addr = dir, "127.0.0.1:0"
	dc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := StartDev(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// likesBatch is a POST /v1/events body of n likes of one post for user.
func likesBatch(user string, n int) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"id":"%s-like-%d","user_id":"%s","type":"like","title":"liker %d liked your post","collapse_key":"post-9"}`, user, i, user, i)
	}
	return `{"events":[` + strings.Join(evs, ",") + `]}`
}

// digestFrame is a notification frame with its data.
type digestFrame struct {
	Type         string `json:"type"`
	Notification struct {
		EventID string `json:"event_id"`
		Title   string `json:"title"`
		Data    struct {
			Digest struct {
				Count int `json:"count"`
			} `json:"digest"`
		} `json:"data"`
	} `json:"notification"`
}

func readNotification(t *testing.T, c *websocket.Conn) digestFrame {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, raw, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f digestFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatalf("frame %s: %v", raw, err)
		}
		if f.Type == "notification" {
			return f
		}
	}
}

// TestDevPolicyDigest: with a digest policy, 50 likes posted at once
// reach a connected user as one live frame "… and 49 more" with count 50,
// and an offline user's phone as one push; the next event of another
// type follows them (nothing else was sent in between).
func TestDevPolicyDigest(t *testing.T) {
	d := startDevFile(t, t.TempDir(), "policy:\n  types:\n    like:\n      digest: {window: 1s}\n")
	defer stopDev(t, d)

	userDo(t, d, "off-1", "POST", "/v1/devices", `{"platform":"ios","token":"ok-digest"}`, http.StatusCreated, nil)
	ws := dial(t, d, "live-1", "")
	if f := read(t, ws); f.Type != "synced" {
		t.Fatalf("first frame %+v", f)
	}
	post(t, d, likesBatch("live-1", 50))
	post(t, d, likesBatch("off-1", 50))

	f := readNotification(t, ws)
	if f.Notification.Data.Digest.Count != 50 || f.Notification.Title != "liker 49 liked your post and 49 more" ||
		!strings.HasPrefix(f.Notification.EventID, "herald-digest-") {
		t.Fatalf("live frame %+v, want the digest of 50", f)
	}
	post(t, d, `{"id":"after","user_id":"live-1","type":"mention","title":"next"}`)
	if f := readNotification(t, ws); f.Notification.EventID != "after" {
		t.Fatalf("frame after the digest: %+v", f)
	}

	got := waitPush(t, d, "ok-digest", http.StatusOK)
	var ap struct {
		APS struct {
			Alert struct{ Title string } `json:"alert"`
		} `json:"aps"`
	}
	if err := json.Unmarshal(got[0].Payload, &ap); err != nil || ap.APS.Alert.Title != "liker 49 liked your post and 49 more" ||
		got[0].Headers["apns-collapse-id"] != "post-9" {
		t.Fatalf("push %s %v: %v", got[0].Payload, got[0].Headers, err)
	}
	post(t, d, `{"id":"after-off","user_id":"off-1","type":"mention","title":"next"}`)
	for len(byToken(pushes(t, d), "ok-digest")) < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(byToken(pushes(t, d), "ok-digest")); n != 2 {
		t.Errorf("%d pushes to the offline user, want the digest and the next one", n)
	}
	var inbox struct {
		Notifications []struct {
			EventID string `json:"event_id"`
		} `json:"notifications"`
	}
	userDo(t, d, "off-1", "GET", "/v1/notifications", "", http.StatusOK, &inbox)
	if len(inbox.Notifications) != 2 {
		t.Errorf("offline user's inbox: %+v", inbox)
	}
}

// TestDevPolicyReload: SIGHUP reads the policy again; a file that no
// longer parses, or an invalid policy, keeps the policy in force.
func TestDevPolicyReload(t *testing.T) {
	dir := t.TempDir()
	d := startDevFile(t, dir, "policy:\n  types:\n    like:\n      digest: {window: 1m}\n")
	defer stopDev(t, d)
	path := filepath.Join(dir, "herald.yaml")
	hup := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitTypes := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !slices.Equal(d.p.Policy().Types(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("policy types %v, want %v", d.p.Policy().Types(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	reloads := func(result string) float64 { return testutil.ToFloat64(d.p.reloads.WithLabelValues(result)) }

	hup("policy:\n  types:\n    comment:\n      rate: {limit: 1, per: 1h}\n")
	waitTypes("comment")
	post(t, d, `{"events":[{"id":"c-1","user_id":"r-1","type":"comment"},{"id":"c-2","user_id":"r-1","type":"comment"},{"id":"l-1","user_id":"r-1","type":"like"}]}`)

	for _, bad := range []string{
		"policy:\n  types:\n    comment:\n      rate: {limit: 0, per: 1h}\n", // invalid policy
		"policy:\n  types:\n    comment:\n      digets: {window: 1m}\n",      // unknown key
		"policy: [\n", // not YAML
	} {
		before := reloads("error")
		hup(bad)
		for reloads("error") == before {
			time.Sleep(10 * time.Millisecond)
		}
		waitTypes("comment")
	}
	if ok := reloads("ok"); ok != 1 {
		t.Errorf("%v good reloads, want 1", ok)
	}
	// The reloaded policy is the one in force: one comment in the hour,
	// and likes no longer digested.
	var inbox struct {
		Notifications []struct {
			EventID string `json:"event_id"`
		} `json:"notifications"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(inbox.Notifications) < 2 && time.Now().Before(deadline) {
		userDo(t, d, "r-1", "GET", "/v1/notifications", "", http.StatusOK, &inbox)
		time.Sleep(20 * time.Millisecond)
	}
	var ids []string
	for _, n := range inbox.Notifications {
		ids = append(ids, n.EventID)
	}
	if !slices.Equal(ids, []string{"c-1", "l-1"}) && !slices.Equal(ids, []string{"l-1", "c-1"}) {
		t.Errorf("inbox %v, want c-1 and l-1 (c-2 throttled)", ids)
	}
}
