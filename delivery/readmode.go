package delivery

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"
)

// ReadMode is how a gateway reads its WebSocket connections
// (Config.ReadMode).
type ReadMode string

const (
	// ReadGoroutine gives every connection a reader goroutine, parked in
	// the socket read while the client is quiet (readLoop).
	ReadGoroutine ReadMode = "goroutine"
	// ReadEpoll parks quiet connections on one epoll instance instead; a
	// goroutine of a bounded pool reads a connection only while its socket
	// has input (poll_linux.go). Linux only.
	ReadEpoll ReadMode = "epoll"
)

// ParseReadMode checks a read mode's name; "" is ReadGoroutine.
func ParseReadMode(s string) (ReadMode, error) {
	switch ReadMode(s) {
	case "", ReadGoroutine:
		return ReadGoroutine, nil
	case ReadEpoll:
		return ReadEpoll, nil
	}
	return "", fmt.Errorf("unknown read mode %q: want %s or %s", s, ReadGoroutine, ReadEpoll)
}

// Frame opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Connection states of the poller (pollConn.state).
const (
	pollParked = iota // armed on the poller; nobody reads it
	pollBusy          // a worker (or the sweep's expiry) owns it
	pollDone          // unregistered; the descriptor may be closed
)

// pollConn is a connection's registration with the poller in epoll mode.
type pollConn struct {
	c  *conn
	id uint64 // the key of the poller's table, carried by its events
	fd int    // the socket's descriptor, open until teardown
	// br is the reader gorilla reads frames through (see hijackTap): the
	// worker parks the connection only when no whole frame is buffered in
	// it.
	br *bufio.Reader
	// raw shuts the socket down without closing its descriptor (drop).
	raw syscall.RawConn

	// readBy is when the connection's silence ends it, Unix nanoseconds:
	// PingInterval+PongWait after the last pong or message, CloseGrace
	// after the close frame (setReadDeadline). The poller's sweep ends a
	// parked connection past it.
	readBy atomic.Int64

	mu    sync.Mutex // guards state and the epoll registration
	state uint8
}

// rawConnOf is the descriptor access of nc, unwrapping wrappers that
// expose Unwrap (the API listener's counted connections).
func rawConnOf(nc net.Conn) (syscall.RawConn, error) {
	for {
		if sc, ok := nc.(syscall.Conn); ok {
			return sc.SyscallConn()
		}
		u, ok := nc.(interface{ Unwrap() net.Conn })
		if !ok {
			return nil, fmt.Errorf("%T has no file descriptor", nc)
		}
		nc = u.Unwrap()
	}
}

// hijackTap hands gorilla's Upgrader a reader of ours at the hijack, so
// that the gateway can see what gorilla has buffered: an Upgrader with
// ReadBufferSize 0 reads frames through the hijacked bufio.Reader when it
// is larger than 256 bytes (gorilla/websocket server.go), instead of
// allocating one of its own. br is nil when the hijack failed or the
// client sent data before the handshake ended (gorilla refuses that).
type hijackTap struct {
	http.ResponseWriter
	size int
	br   *bufio.Reader
}

var _ http.Hijacker = (*hijackTap)(nil)

func (h *hijackTap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err
	}
	h.br = bufio.NewReaderSize(nc, h.size)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// minPollReadBuffer is the smallest read buffer of epoll mode: gorilla
// reuses the hijacked reader only above 256 bytes.
const minPollReadBuffer = 257

// upgrade upgrades the request; in epoll mode through a hijackTap, which
// it returns.
func (g *Gateway) upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, *hijackTap, error) {
	if g.poll == nil {
		ws, err := g.upgrader.Upgrade(w, r, nil)
		return ws, nil, err
	}
	tap := &hijackTap{ResponseWriter: w, size: g.pollBuffer}
	ws, err := g.pollUpgrader.Upgrade(tap, r, nil)
	return ws, tap, err
}

// startPoller starts the epoll read mode, or logs why the gateway reads in
// goroutine mode instead.
func (g *Gateway) startPoller() {
	p, err := newPoller(g)
	if err != nil {
		g.log.Warn("epoll read mode unavailable, reading connections in goroutine mode", "err", err)
		return
	}
	g.poll = p
	g.pollUpgrader = g.upgrader
	g.pollUpgrader.ReadBufferSize = 0
	g.pollBuffer = max(g.cfg.ReadBufferSize, minPollReadBuffer)
	g.log.Info("reading WebSockets in epoll mode", "workers", g.cfg.ReadWorkers, "read_buffer", g.pollBuffer)
}
