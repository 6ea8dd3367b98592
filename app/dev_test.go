package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

type frame struct {
	Type         string `json:"type"`
	Seq          uint64 `json:"seq"`
	Unread       int64  `json:"unread"`
	Count        int64  `json:"count"`
	Notification struct {
		Seq     uint64 `json:"seq"`
		Prev    uint64 `json:"prev"`
		EventID string `json:"event_id"`
		Title   string `json:"title"`
	} `json:"notification"`
}

func startDev(t *testing.T, dir string) *Dev {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := StartDev(ctx, DevConfig{DataDir: dir, Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stopDev(t *testing.T, d *Dev) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
}

func token(t *testing.T, d *Dev, user string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(d.Secrets().JWTSecret), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func post(t *testing.T, d *Dev, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", d.URL()+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.Secrets().APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, raw)
	}
}

func dial(t *testing.T, d *Dev, user, query string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(d.URL(), "http") + "/v1/ws?token=" + token(t, d, user) + query
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, raw, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("frame %s: %v", raw, err)
	}
	return f
}

// TestDevEndToEnd drives `herald dev` in-process from the outside: an event
// posted to the API reaches the user's WebSocket, the process restarts on
// the same data dir, and a client resuming with after= replays exactly what
// it missed, then receives live ones.
func TestDevEndToEnd(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)

	ws := dial(t, d, "alice", "")
	if f := read(t, ws); f.Type != "synced" || f.Seq != 0 || f.Unread != 0 {
		t.Fatalf("first frame %+v", f)
	}
	other := dial(t, d, "bob", "")
	if f := read(t, other); f.Type != "synced" {
		t.Fatalf("bob first frame %+v", f)
	}

	post(t, d, `{"id":"e1","user_id":"alice","type":"mention","title":"one"}`)
	f := read(t, ws)
	if f.Type != "notification" || f.Notification.Seq != 1 || f.Notification.Prev != 0 || f.Notification.Title != "one" {
		t.Fatalf("live frame %+v", f)
	}
	// A batch with a duplicate id: two new notifications, in order.
	post(t, d, `{"events":[{"id":"e2","user_id":"alice","type":"t","title":"two"},{"id":"e1","user_id":"alice","type":"mention","title":"one again"},{"id":"e3","user_id":"alice","type":"t","title":"three"}]}`)
	for want := uint64(2); want <= 3; want++ {
		f := read(t, ws)
		if f.Type != "notification" || f.Notification.Seq != want || f.Notification.Prev != want-1 {
			t.Fatalf("want seq %d, got %+v", want, f)
		}
	}
	// Read from "another device" over HTTP: the socket hears the new count.
	req, _ := http.NewRequest("POST", d.URL()+"/v1/notifications/read", bytes.NewBufferString(`{"seqs":[1]}`))
	req.Header.Set("Authorization", "Bearer "+token(t, d, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if f := read(t, ws); f.Type != "unread" || f.Count != 2 {
		t.Fatalf("unread frame %+v", f)
	}
	// Bob saw nothing of Alice's: his next frame is his own notification.
	post(t, d, `{"id":"b1","user_id":"bob","type":"t","title":"for bob"}`)
	if f := read(t, other); f.Type != "notification" || f.Notification.EventID != "b1" {
		t.Fatalf("bob got %+v", f)
	}

	// Restart on the same data directory; the socket is told to reconnect.
	stopDev(t, d)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
		t.Fatalf("want close 1012, got %v", err)
	}

	d = startDev(t, dir)
	defer stopDev(t, d)
	post(t, d, `{"id":"e4","user_id":"alice","type":"t","title":"four"}`)
	ws = dial(t, d, "alice", "&after=1")
	var seqs []string
	for {
		f := read(t, ws)
		if f.Type == "synced" {
			break
		}
		seqs = append(seqs, fmt.Sprint(f.Notification.Seq))
	}
	// e4 may arrive during or after the replay; either way no gap, no duplicate.
	if got := strings.Join(seqs, ","); got != "2,3,4" && got != "2,3" {
		t.Fatalf("replay after=1: %s", got)
	}
	if len(seqs) == 2 {
		if f := read(t, ws); f.Notification.Seq != 4 {
			t.Fatalf("live after replay: %+v", f)
		}
	}
	post(t, d, `{"id":"e5","user_id":"alice","type":"t","title":"five"}`)
	if f := read(t, ws); f.Notification.Seq != 5 || f.Notification.Prev != 4 {
		t.Fatalf("live after restart: %+v", f)
	}
}
