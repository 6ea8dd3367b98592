//go:build linux

package delivery

import "testing"

func TestParseFrameHeader(t *testing.T) {
	long := maskedFrame(opText, make([]byte, 300))
	for _, tc := range []struct {
		name    string
		b       []byte
		ok      bool
		size    int
		payload uint64
	}{
		{"empty", nil, false, 0, 0},
		{"one byte", []byte{0x81}, false, 0, 0},
		{"short text", maskedFrame(opText, []byte("hi")), true, 6, 2},
		{"16-bit length", long, true, 8, 300},
		{"16-bit length cut", long[:3], false, 0, 0},
		{"mask key cut", long[:6], false, 0, 0},
		{"64-bit length", []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, true, 14, 1 << 16},
	} {
		h, ok := parseFrameHeader(tc.b)
		if ok != tc.ok || (ok && (h.size != tc.size || h.payload != tc.payload)) {
			t.Errorf("%s: ok %v size %d payload %d; want %v %d %d", tc.name, ok, h.size, h.payload, tc.ok, tc.size, tc.payload)
		}
	}
}

func TestFrameRefused(t *testing.T) {
	hdr := func(f []byte) frameHeader {
		h, ok := parseFrameHeader(f)
		if !ok {
			t.Fatalf("no header in %x", f)
		}
		return h
	}
	unmasked := hdr([]byte{0x81, 0x02, 'h', 'i'})
	fragment := maskedFrame(opText, []byte("x"))
	fragment[0] &^= 0x80 // FIN off
	for _, tc := range []struct {
		name string
		h    frameHeader
		off  int
		want bool
	}{
		{"text", hdr(maskedFrame(opText, []byte("hi"))), 0, false},
		{"unmasked", unmasked, 0, true},
		{"text over the limit", hdr(maskedFrame(opText, make([]byte, 200))), 0, true},
		{"text inside a message", hdr(maskedFrame(opText, []byte("hi"))), 5, true},
		{"continuation first", hdr(maskedFrame(opContinuation, []byte("hi"))), 0, true},
		{"continuation inside", hdr(maskedFrame(opContinuation, []byte("hi"))), 5, false},
		{"ping", hdr(maskedFrame(opPing, []byte("hi"))), 0, false},
		{"fragmented ping", hdr(append([]byte{opPing}, fragment[1:]...)), 0, true},
		{"reserved opcode", hdr(maskedFrame(0x3, nil)), 0, true},
		{"RSV2", hdr(append([]byte{0x80 | 0x20 | opText}, fragment[1:]...)), 0, true},
	} {
		if got := tc.h.refused(tc.off, 100); got != tc.want {
			t.Errorf("%s: refused = %v, want %v", tc.name, got, tc.want)
		}
	}
}
