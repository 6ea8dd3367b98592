package app

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvents reads the events of an SSE response: each as "event data"
// (comments and the retry line skipped) until the body ends.
func sseEvents(body io.Reader) <-chan string {
	out := make(chan string, 64)
	go func() {
		defer close(out)
		br := bufio.NewReader(body)
		var event, data string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch line = strings.TrimSuffix(line, "\n"); {
			case line == "":
				if event != "" {
					out <- event + " " + data
				}
				event, data = "", ""
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan string) string {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no SSE event")
	}
	return ""
}

// TestDevSSEAndLongPoll: herald dev serves /v1/sse and long polls on the
// same listener as the API; an event posted reaches both, and Shutdown
// ends the stream with the 1012 close event.
func TestDevSSEAndLongPoll(t *testing.T) {
	d := startDev(t, t.TempDir())
	stopped := false
	defer func() {
		if !stopped {
			stopDev(t, d)
		}
	}()
	resp, err := http.Get(d.URL() + "/v1/sse?token=" + token(t, d, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/sse: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sseEvents(resp.Body)
	if ev := nextEvent(t, events); ev != `synced {"seq":0,"unread":0}` {
		t.Fatalf("first event %q", ev)
	}

	type answer struct {
		code int
		body string
	}
	polled := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", d.URL()+"/v1/notifications?after=0&wait=60", nil)
		req.Header.Set("Authorization", "Bearer "+token(t, d, "bob"))
		client := &http.Client{Timeout: 50 * time.Second} // a failure guard only
		r, err := client.Do(req)
		if err != nil {
			polled <- answer{0, err.Error()}
			return
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		polled <- answer{r.StatusCode, string(b)}
	}()

	post(t, d, `{"id":"a1","user_id":"alice","type":"mention","title":"for alice"}`)
	ev := nextEvent(t, events)
	if !strings.HasPrefix(ev, "notification ") || !strings.Contains(ev, `"event_id":"a1"`) {
		t.Fatalf("live event %q", ev)
	}
	post(t, d, `{"id":"b1","user_id":"bob","type":"mention","title":"for bob"}`)
	a := <-polled
	var page struct {
		Notifications []struct {
			Seq     uint64 `json:"seq"`
			EventID string `json:"event_id"`
		} `json:"notifications"`
		Next uint64 `json:"next"`
	}
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || a.code != 200 || len(page.Notifications) != 1 ||
		page.Notifications[0].EventID != "b1" || page.Next != 1 {
		t.Fatalf("long poll: %d %s", a.code, a.body)
	}

	stopDev(t, d)
	stopped = true
	if ev := nextEvent(t, events); !strings.HasPrefix(ev, `close {"code":1012,`) {
		t.Fatalf("at shutdown: %q", ev)
	}
}
