package delivery

import (
	"bufio"
	"compress/flate"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
)

// wireSide is the server end of one WebSocket over loopback TCP whose
// client is a raw socket draining everything into a byte count: what the
// gateway's writer pays per frame, and what goes on the wire.
type wireSide struct {
	ws      *websocket.Conn
	wire    atomic.Int64 // bytes the client received after the 101 response
	drained chan struct{}
	deflate bool // permessage-deflate was negotiated
}

// newWireSide upgrades one connection with the gateway's upgrader options;
// the raw client offers permessage-deflate when offer is set.
func newWireSide(tb testing.TB, compression, offer bool) *wireSide {
	tb.Helper()
	got := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{ReadBufferSize: 512, WriteBufferSize: 4 << 10, EnableCompression: compression}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			tb.Error(err)
			return
		}
		got <- ws
	}))
	tb.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	ext := ""
	if offer {
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	}
	if _, err := fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", addr, ext); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	_ = resp.Body.Close() // a 101 has none: the connection is the WebSocket's
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake answered %d", resp.StatusCode)
	}
	s := &wireSide{ws: <-got, drained: make(chan struct{})}
	s.deflate = strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	go func() {
		defer close(s.drained)
		buf := make([]byte, 64<<10)
		for {
			n, err := br.Read(buf)
			s.wire.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() { _ = nc.Close(); _ = s.ws.Close() })
	return s
}

// finish closes the server side and waits until the client has read
// everything, so that wire counts every byte written.
func (s *wireSide) finish() int64 {
	_ = s.ws.NetConn().Close()
	<-s.drained
	return s.wire.Load()
}

// benchNotification is a typical notification of a social or work app:
// a reply with its actor, links and ids in data, as the enricher stores it
// (ULIDs and ids vary with i, as in a replay).
func benchNotification(i int) *herald.Notification {
	t := time.Date(2026, 11, 3, 9, 41, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Second)
	actors := []string{"Ana Souza", "Kenji Watanabe", "Fatima Al-Sayed", "Lukas Becker", "Priya Raman"}
	actor := actors[i%len(actors)]
	data, _ := json.Marshal(map[string]any{
		"post_id":    fmt.Sprintf("pst_%08x", 0x5a3c0000+i*7919),
		"comment_id": fmt.Sprintf("cmt_%08x", 0x7e110000+i*104729),
		"url":        fmt.Sprintf("https://app.example.com/teams/platform/posts/%d#comment-%d", 48210+i/3, 913000+i),
		"actor": map[string]string{
			"id":     fmt.Sprintf("usr_%06d", 100000+i*31),
			"name":   actor,
			"avatar": fmt.Sprintf("https://cdn.example.com/avatars/%06d/64.png", 100000+i*31),
		},
	})
	return &herald.Notification{
		ID: herald.NewID(t), Seq: uint64(1000 + i), Prev: uint64(999 + i), EventID: fmt.Sprintf("evt-%d-%x", i, 0x9d2b51+i*613),
		Type: "comment.reply", Priority: herald.PriorityNormal,
		Title:     actor + " replied to your comment",
		Body:      fmt.Sprintf("%s: \"Agreed — let's move the rollout to Thursday and keep the feature flag on for the beta cohort until the dashboards look healthy (%d).\"", actor, i),
		Data:      data,
		CreatedAt: t,
	}
}

// benchFrames are the frames of the compression benchmarks.
func benchFrames(tb testing.TB) map[string][][]byte {
	tb.Helper()
	one, err := encodeNotification(benchNotification(0))
	if err != nil {
		tb.Fatal(err)
	}
	batch := make([][]byte, 100)
	for i := range batch {
		if batch[i], err = encodeNotification(benchNotification(i)); err != nil {
			tb.Fatal(err)
		}
	}
	return map[string][][]byte{
		"notification": {one},
		"replay100":    batch,
		"unread":       {encodeUnread(17)},
		"synced":       {encodeSynced(1099, 17)},
	}
}

// BenchmarkWSCompression writes server frames as the gateway's writer does
// (wsSink.frame) with compression off and at several flate levels. One op
// is one frame, or the 100 frames of replay100; wire-B/op is what the
// client received, raw-B/op the frames' own size.
//
//	go test ./delivery -run '^$' -bench WSCompression -benchmem
func BenchmarkWSCompression(b *testing.B) {
	levels := []struct {
		name  string
		on    bool
		level int
	}{
		{"off", false, 0},
		{"huffman", true, flate.HuffmanOnly},
		{"level1", true, flate.BestSpeed},
		{"level6", true, flate.DefaultCompression},
		{"level9", true, flate.BestCompression},
	}
	frames := benchFrames(b)
	for _, kind := range []string{"notification", "replay100", "unread", "synced"} {
		fs := frames[kind]
		raw := 0
		for _, f := range fs {
			raw += len(f)
		}
		for _, lv := range levels {
			b.Run(kind+"/"+lv.name, func(b *testing.B) {
				s := newWireSide(b, lv.on, true)
				if s.deflate != lv.on {
					b.Fatalf("deflate negotiated = %v", s.deflate)
				}
				if lv.on {
					if err := s.ws.SetCompressionLevel(lv.level); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					for _, f := range fs {
						_ = s.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
						if err := s.ws.WriteMessage(websocket.TextMessage, f); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				wire := s.finish()
				b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
				b.ReportMetric(float64(raw), "raw-B/op")
			})
		}
	}
}
