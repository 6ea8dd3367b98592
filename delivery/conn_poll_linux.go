//go:build linux

package delivery

import (
	"encoding/binary"
	"errors"
	"net"
	"time"
)

// What scan found at the start of a connection's buffered input.
const (
	scanMore    = iota // no whole frame: read the socket, or park
	scanControl        // a ping or pong, consumed and handled
	scanMessage        // gorilla's to read: a whole message, a close frame, a frame gorilla refuses, or a full buffer
	scanFailed         // handling a ping failed
)

// frameHeader is a client frame's header (RFC 6455 5.2).
type frameHeader struct {
	op      byte
	fin     bool
	rsv     byte // RSV1-3 bits
	masked  bool
	size    int    // the header's length, mask key included
	payload uint64 // the payload's length
}

// parseFrameHeader reads the frame header at the start of b; ok is false
// when b holds only part of it.
func parseFrameHeader(b []byte) (h frameHeader, ok bool) {
	if len(b) < 2 {
		return h, false
	}
	h.op = b[0] & 0x0f
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.masked = b[1]&0x80 != 0
	h.size = 2
	switch n := b[1] & 0x7f; n {
	case 126:
		if len(b) < 4 {
			return h, false
		}
		h.payload = uint64(binary.BigEndian.Uint16(b[2:]))
		h.size = 4
	case 127:
		if len(b) < 10 {
			return h, false
		}
		h.payload = binary.BigEndian.Uint64(b[2:])
		h.size = 10
	default:
		h.payload = uint64(n)
	}
	if h.masked {
		h.size += 4
	}
	return h, len(b) >= h.size
}

// refused reports whether gorilla refuses a frame with header h as the
// frame at offset off of what scan looks at (off > 0: inside a fragmented
// message), which it then does on reading the header alone.
func (h *frameHeader) refused(off int, limit int64) bool {
	switch {
	case !h.masked, h.rsv&0x30 != 0: // RSV2, RSV3
		return true
	case h.op >= opClose:
		return h.op > opPong || !h.fin || h.payload > 125
	case h.op == opContinuation:
		return off == 0
	case h.op == opText, h.op == opBinary:
		return off > 0 || h.payload > uint64(limit) //nolint:gosec // limit > 0
	}
	return true // a reserved data opcode
}

// scan classifies the input buffered in pc.br. Pings and pongs at its
// start are consumed and handled here (see poll_linux.go).
func (p *poller) scan(pc *pollConn) int {
	br := pc.br
	buf, _ := br.Peek(br.Buffered())
	for off := 0; ; {
		h, ok := parseFrameHeader(buf[off:])
		if !ok {
			break
		}
		if h.refused(off, p.g.cfg.MaxMessageBytes) {
			return scanMessage
		}
		if h.payload > uint64(len(buf)-off-h.size) { //nolint:gosec // non-negative
			break // incomplete
		}
		end := off + h.size + int(h.payload) //nolint:gosec // at most len(buf)
		switch {
		case h.op == opClose:
			return scanMessage // gorilla answers it and ends the read
		case h.op >= opClose: // ping or pong
			if off == 0 && h.rsv == 0 {
				return p.control(pc, &h, buf[:end])
			}
			if off == 0 {
				return scanMessage // RSV1: gorilla decides
			}
		case h.fin:
			return scanMessage // the last frame of a message
		}
		off = end
	}
	if br.Buffered() == br.Size() {
		return scanMessage // a frame larger than the buffer: gorilla reads the rest
	}
	return scanMore
}

// control handles the ping or pong frame f (header h) and consumes it.
func (p *poller) control(pc *pollConn, h *frameHeader, f []byte) int {
	key := f[h.size-4 : h.size]
	data := make([]byte, len(f)-h.size)
	for i := range data {
		data[i] = f[h.size+i] ^ key[i&3]
	}
	_, _ = pc.br.Discard(len(f))
	if h.op == opPong {
		pc.c.extendReadDeadline()
		return scanControl
	}
	if err := pc.c.onPing(string(data)); err != nil {
		pc.c.readFailed(err)
		return scanFailed
	}
	return scanControl
}

// serve reads what a ready (or expired) connection has, then parks it or
// ends it. The worker owns pc throughout.
func (p *poller) serve(pc *pollConn) {
	c := pc.c
	nc := c.ws.NetConn()
	filled := false
	for {
		if time.Now().UnixNano() > pc.readBy.Load() {
			c.close(0, "", "timeout")
			p.finish(pc)
			return
		}
		switch p.scan(pc) {
		case scanControl:
			continue
		case scanFailed:
			p.finish(pc)
			return
		case scanMessage:
			_ = nc.SetReadDeadline(time.Now().Add(p.frameTimeout))
			mt, data, err := readMessage(c.ws, c.g.cfg.MaxMessageBytes, c.g.cfg.WriteTimeout)
			if err != nil {
				p.readFailed(pc, err)
				return
			}
			c.onMessage(mt, data)
			continue
		}
		// scanMore
		if filled {
			p.park(pc)
			return
		}
		filled = true
		_ = nc.SetReadDeadline(time.Now().Add(p.frameTimeout))
		if _, err := pc.br.Peek(pc.br.Buffered() + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.park(pc) // woken for nothing, or a partial frame: wait for more
				return
			}
			p.readFailed(pc, err)
			return
		}
	}
}

// readFailed ends a connection whose read failed, lingering first on its
// own goroutine (counted by the gateway; the registration's count is
// still held) when gorilla has sent 1009.
func (p *poller) readFailed(pc *pollConn, err error) {
	if !pc.c.readFailed(err) {
		p.finish(pc)
		return
	}
	p.g.wg.Add(1)
	go func() {
		defer p.g.wg.Done()
		pc.c.linger()
		p.finish(pc)
	}()
}
