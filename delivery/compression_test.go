package delivery

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// compressibleBody makes a notification worth deflating.
var compressibleBody = strings.Repeat("the rollout moves to Thursday; ", 40)

// TestCompressionNegotiated: with Config.Compression a client that offers
// permessage-deflate gets it, and everything still works through it: the
// replay, a live notification, and a read frame the client compresses.
func TestCompressionNegotiated(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Compression = true })
	appendN(t, e.store, "alice", 3)
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 15 * time.Second}
	c, resp, err := d.Dial(e.wsURL+"?token="+token(t, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	resp.Body.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions = %q, want permessage-deflate", ext)
	}
	seqs, synced := readUntilSynced(t, c)
	if fmt.Sprint(seqs) != "[1 2 3]" || synced.Seq != 3 || synced.Unread != 3 {
		t.Fatalf("replay %v then %v", seqs, synced)
	}
	n := appendN(t, e.store, "alice", 1)[0]
	n.Body = compressibleBody
	if _, err := e.gw.Deliver(t.Context(), "alice", n); err != nil {
		t.Fatal(err)
	}
	f := read(t, c)
	if f.Type != "notification" || f.Notification.Seq != 4 || f.Notification.Body != compressibleBody ||
		f.Notification.ID != n.ID {
		t.Fatalf("live frame %v (body %d bytes)", f, len(f.Notification.Body))
	}
	// gorilla's client compresses its frames once negotiated.
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","all":true}`)); err != nil {
		t.Fatal(err)
	}
	if f := read(t, c); f.Type != "unread" || f.Count != 0 {
		t.Fatalf("after read all: %v", f)
	}
}

// wsFrame is one server frame as it came off the wire.
type wsFrame struct {
	rsv1    bool // compressed (RFC 7692's per-message bit)
	opcode  byte
	payload []byte // inflated when rsv1
}

// rawWSDial opens a WebSocket with a hand-written handshake, offering
// permessage-deflate when offer is set, and returns the response and a
// reader of the frames that follow it.
func rawWSDial(t *testing.T, e *env, user string, offer bool) (http.Header, func() wsFrame) {
	t.Helper()
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	ext := ""
	if offer {
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	}
	if _, err := fmt.Fprintf(nc, "GET /v1/ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", token(t, user), addr, ext); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // a 101 has none: the connection is the WebSocket's
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %d", resp.StatusCode)
	}
	next := func() wsFrame {
		t.Helper()
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("frame header: %v", err)
		}
		if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
			t.Fatalf("fragmented or masked server frame %x", h)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			_, err = io.ReadFull(br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, err = io.ReadFull(br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		if err != nil || n > 1<<20 {
			t.Fatalf("frame length %d: %v", n, err)
		}
		f := wsFrame{rsv1: h[0]&0x40 != 0, opcode: h[0] & 0x0f, payload: make([]byte, n)}
		if _, err := io.ReadFull(br, f.payload); err != nil {
			t.Fatalf("frame payload: %v", err)
		}
		if f.rsv1 {
			// RFC 7692 §7.2.2: append the empty block's tail, then inflate.
			fr := flate.NewReader(io.MultiReader(bytes.NewReader(f.payload), strings.NewReader("\x00\x00\xff\xff")))
			inflated, err := io.ReadAll(fr)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("inflate: %v", err)
			}
			f.payload = inflated
		}
		return f
	}
	return resp.Header, next
}

// TestCompressionOnTheWire reads the gateway's frames off the socket: with
// the setting on and the extension offered, the notification frames are
// deflated (RSV1) and the short synced frame is not; a client that offers
// nothing, or any client while the setting is off, gets neither the
// extension nor a compressed frame.
func TestCompressionOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name        string
		setting     bool
		offer, want bool
	}{
		{"on/offered", true, true, true},
		{"on/not offered", true, false, false},
		{"off/offered", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Compression = tc.setting })
			ns := appendN(t, e.store, "bob", 2)
			hdr, next := rawWSDial(t, e, "bob", tc.offer)
			ext := hdr.Get("Sec-WebSocket-Extensions")
			if got := strings.Contains(ext, "permessage-deflate"); got != tc.want {
				t.Fatalf("Sec-WebSocket-Extensions = %q, negotiated %v, want %v", ext, got, tc.want)
			}
			for i, n := range ns {
				f := next()
				want, err := encodeNotification(&n)
				if err != nil {
					t.Fatal(err)
				}
				if f.opcode != websocket.TextMessage || !bytes.Equal(f.payload, want) {
					t.Fatalf("frame %d: opcode %d %s, want %s", i, f.opcode, f.payload, want)
				}
				if f.rsv1 != tc.want {
					t.Fatalf("notification frame %d (%d bytes) compressed = %v, want %v", i, len(want), f.rsv1, tc.want)
				}
			}
			f := next()
			var s frame
			if err := json.Unmarshal(f.payload, &s); err != nil || s.Type != "synced" || s.Seq != 2 {
				t.Fatalf("after the replay: %s (%v)", f.payload, err)
			}
			if f.rsv1 {
				t.Fatalf("synced frame (%d bytes) compressed, below minCompressBytes", len(f.payload))
			}
		})
	}
}

// TestCompressedFrameInflatedPastLimit: MaxMessageBytes bounds a client
// frame as inflated, not only as sent: a small deflated frame that inflates
// past it is refused with 1009, like an oversized plain one.
func TestCompressedFrameInflatedPastLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Compression = true })
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 15 * time.Second}
	c, resp, err := d.Dial(e.wsURL+"?token="+token(t, "carol"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	resp.Body.Close()
	readUntilSynced(t, c)
	// Valid JSON once inflated (trailing spaces), 64 KiB against the
	// default 4 KiB limit; deflated it is a few hundred bytes.
	big := append([]byte(`{"type":"read","all":true}`), bytes.Repeat([]byte(" "), 64<<10)...)
	if err := c.WriteMessage(websocket.TextMessage, big); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}
