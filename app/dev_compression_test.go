package app

import (
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// herald dev --ws-compression lets a client that offers permessage-deflate
// negotiate it; without the flag it is never negotiated.
func TestDevWSCompressionFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--ws-compression"}, true},
		{nil, false},
	} {
		d := startDevWith(t, tc.args...)
		dialer := websocket.Dialer{EnableCompression: true}
		c, resp, err := dialer.Dial("ws"+strings.TrimPrefix(d.URL(), "http")+"/v1/ws?token="+token(t, d, "alice"), nil)
		if err != nil {
			t.Fatalf("%v: dial: %v", tc.args, err)
		}
		resp.Body.Close()
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if got := strings.Contains(ext, "permessage-deflate"); got != tc.want {
			t.Errorf("herald dev %v: Sec-WebSocket-Extensions %q, negotiated %v, want %v", tc.args, ext, got, tc.want)
		}
		if f := read(t, c); f.Type != "synced" {
			t.Errorf("herald dev %v: got %v, want synced", tc.args, f)
		}
		_ = c.Close()
	}
}
