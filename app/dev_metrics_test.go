package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The pusher's dead-letter depth gauge is served on /metrics, one series
// per DLQ, measured at scrape time.
func TestDevServesDLQDepth(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer stopDev(t, d)
	resp, err := http.Get(d.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(raw)
	for _, topic := range []string{"herald.events.dlq", "herald.push.dlq"} {
		if !strings.Contains(body, `herald_dlq_depth{topic="`+topic+`"} 0`) {
			t.Errorf("no herald_dlq_depth 0 for %s in /metrics:\n%s", topic, grepLines(body, "dlq"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
