package delivery

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// maskedFrame is a client frame (FIN set) with opcode op and payload p,
// masked as clients must.
func maskedFrame(op byte, p []byte) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	f := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		f = append(f, 0x80|byte(len(p)))
	default:
		f = append(f, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i&3])
	}
	return f
}

// readUntil reads nc until it has received want, or fails.
func readUntil(t *testing.T, nc net.Conn, want string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(want)) {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
		}
		got = append(got, buf[:n]...)
	}
}

// TestSplitFrames: frames that arrive in pieces (a read frame and a ping
// cut in two, a read frame larger than the read buffer) are read whole,
// and a client stalled in the middle of a frame does not hold up the
// others, even with one read worker (in epoll mode a partial frame is
// parked, not waited for).
func TestSplitFrames(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReadWorkers = 1 })
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	stalled := rawDial(t, addr, token(t, "split-a"))
	defer stalled.Close()
	other := rawDial(t, addr, token(t, "split-b"))
	defer other.Close()

	read := maskedFrame(opText, []byte(`{"type":"read","all":true}`))
	if _, err := stalled.Write(read[:9]); err != nil {
		t.Fatal(err)
	}
	// While a's frame is half sent, b's frames are answered.
	if _, err := other.Write(read); err != nil {
		t.Fatal(err)
	}
	readUntil(t, other, `"type":"unread"`)
	ping := maskedFrame(opPing, []byte("hello"))
	if _, err := other.Write(ping[:3]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the first part arrive alone
	if _, err := other.Write(ping[3:]); err != nil {
		t.Fatal(err)
	}
	readUntil(t, other, "\x8a\x05hello") // the pong
	// A frame of 700 bytes: larger than the 512-byte read buffer.
	seqs := strings.Repeat("1,", 340) + "1"
	big := maskedFrame(opText, []byte(`{"type":"read","seqs":[`+seqs+`]}`))
	if _, err := other.Write(big); err != nil {
		t.Fatal(err)
	}
	readUntil(t, other, `"type":"unread"`)

	// a finishes its frame: it was kept, and is answered.
	if _, err := stalled.Write(read[9:]); err != nil {
		t.Fatal(err)
	}
	readUntil(t, stalled, `"type":"unread"`)
	if n := e.gw.ConnCount(); n != 2 {
		t.Fatalf("%d connections open, want 2", n)
	}
}

// TestShutdownDropsSilentClients: clients that never answer the close
// frame are dropped when Shutdown's context ends (in epoll mode by
// shutting the parked sockets down, which wakes their workers), and every
// connection is released before Shutdown returns.
func TestShutdownDropsSilentClients(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CloseGrace = time.Hour })
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	for i := range 5 {
		nc := rawDial(t, addr, token(t, "silent-"+string(rune('a'+i))))
		defer nc.Close()
	}
	eventually(t, "the connections to register", func() bool { return e.gw.ConnCount() == 5 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.gw.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if n := e.gw.ConnCount(); n != 0 {
		t.Fatalf("%d connections left after Shutdown", n)
	}
}
