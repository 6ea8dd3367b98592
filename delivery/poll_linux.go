//go:build linux

package delivery

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The epoll read mode (Config.ReadMode = ReadEpoll).
//
// A connection is registered with the gateway's one epoll instance, level
// triggered and one-shot, as soon as it is in the hub. The poll loop
// (loop) waits for events and hands each ready connection to the bounded
// pool of workers (jobs); a worker reads what the connection has sent,
// then re-arms it (park). While a worker owns a connection the poller
// delivers no event for it (one-shot), so at most one goroutine reads a
// connection at a time, as in goroutine mode.
//
// Buffered input: gorilla reads frames through pollConn.br (hijackTap).
// Before parking, the worker looks at what br holds (scan): a whole
// message, close frame or protocol error goes to gorilla's ReadMessage,
// which then touches the socket only if the frame overflows the buffer;
// pings and pongs are answered here, because gorilla's ReadMessage would
// go on to read the next frame after them; a partial frame that fits the
// buffer stays in it, and the connection is parked until more arrives. So
// no whole frame is ever left in br while parked, and the level-triggered
// re-arm reports whatever the socket still holds.
//
// Bounded reads: every socket read of a worker has a deadline of
// FrameTimeout. The worker reads the socket itself at most once per event
// and parks on a timeout, keeping the partial frame; only gorilla's read
// of a frame larger than the buffer can time out mid-frame, which drops
// the connection (reason timeout), since gorilla's reader cannot resume.
//
// Idle connections: the socket has no read deadline while parked; each
// connection's readBy (see setReadDeadline) is checked by a sweep of the
// poll loop every sweepEvery, and a parked connection past it is handed to
// a worker that ends it (reason timeout), like an expired read deadline in
// goroutine mode.
//
// Ownership: each registered connection holds one count of the gateway's
// WaitGroup, released by finish after its teardown. The poll loop and the
// workers are counted by the poller's own wg: Shutdown stops them (stop)
// once the gateway's WaitGroup has drained, i.e. when no connection is
// left.

// poller is the epoll instance, its loop and its workers.
type poller struct {
	g            *Gateway
	epfd         int
	wakefd       int // an eventfd, key 0: written by stop
	jobs         chan *pollConn
	every        time.Duration // sweep interval
	frameTimeout time.Duration

	mu    sync.Mutex
	conns map[uint64]*pollConn // registered connections by key
	next  uint64               // the last key given
	stale []*pollConn          // the sweep's scratch list; loop only

	wg       sync.WaitGroup // the loop and the workers
	stopOnce sync.Once
}

// newPoller creates the epoll instance and starts the loop and workers.
func newPoller(g *Gateway) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &poller{
		g:            g,
		epfd:         epfd,
		wakefd:       wakefd,
		jobs:         make(chan *pollConn, g.cfg.ReadWorkers),
		every:        min(max(min(g.readWait, g.cfg.CloseGrace)/8, 5*time.Millisecond), time.Second),
		frameTimeout: g.cfg.FrameTimeout,
		conns:        map[uint64]*pollConn{},
	}
	p.wg.Add(1 + g.cfg.ReadWorkers)
	go p.loop()
	for range g.cfg.ReadWorkers {
		go p.work()
	}
	return p, nil
}

// stop ends the loop and the workers and closes the epoll instance. The
// gateway calls it once no connection is registered.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1) // the eventfd's counter
		_, _ = unix.Write(p.wakefd, one[:])
		p.wg.Wait()
		_ = unix.Close(p.epfd)
		_ = unix.Close(p.wakefd)
	})
}

// event is the epoll event of a registered connection with key id.
func event(id uint64) *unix.EpollEvent {
	return &unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(id)),       //nolint:gosec // the key's low half
		Pad:    int32(uint32(id >> 32)), //nolint:gosec // and its high half
	}
}

// eventKey is the key an event carries (0: the eventfd).
func eventKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 //nolint:gosec // see event
}

// prepare makes c's registration, before c is shared (ServeHTTP, before
// hub.add); nil when c's socket has no descriptor (then c is read in
// goroutine mode). br is the reader gorilla reads c through.
func (p *poller) prepare(c *conn, br *bufio.Reader) *pollConn {
	raw, err := rawConnOf(c.ws.NetConn())
	if err != nil {
		p.g.log.Warn("epoll read mode: no descriptor, reading in goroutine mode", "err", err)
		return nil
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil { //nolint:gosec // a descriptor fits an int
		return nil
	}
	pc := &pollConn{c: c, fd: fd, br: br, raw: raw, state: pollParked}
	pc.readBy.Store(time.Now().Add(p.g.readWait).UnixNano())
	c.pc = pc
	return pc
}

// arm registers a prepared connection, which holds a count of the
// gateway's WaitGroup from now until finish. A connection that cannot be
// registered is ended at once.
func (p *poller) arm(pc *pollConn) {
	p.mu.Lock()
	p.next++
	pc.id = p.next
	p.conns[pc.id] = pc
	p.mu.Unlock()
	pc.mu.Lock()
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, pc.fd, event(pc.id))
	pc.mu.Unlock()
	if err != nil {
		p.g.log.Error("epoll_ctl add failed", "user", pc.c.user, "err", err)
		pc.c.close(0, "", "read_error")
		p.finish(pc)
	}
}

// take gives the caller the ownership of a parked connection.
func (pc *pollConn) take() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.state != pollParked {
		return false
	}
	pc.state = pollBusy
	return true
}

// park re-arms a connection its worker is done with.
func (p *poller) park(pc *pollConn) {
	pc.mu.Lock()
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, pc.fd, event(pc.id))
	if err == nil {
		pc.state = pollParked
	}
	pc.mu.Unlock()
	if err != nil {
		p.g.log.Error("epoll_ctl mod failed", "user", pc.c.user, "err", err)
		pc.c.close(0, "", "read_error")
		p.finish(pc)
	}
}

// finish unregisters a connection its worker owns, tears it down (which
// closes the descriptor, after it left the epoll set) and releases its
// count of the gateway's WaitGroup.
func (p *poller) finish(pc *pollConn) {
	pc.mu.Lock()
	pc.state = pollDone
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	pc.mu.Unlock()
	p.mu.Lock()
	delete(p.conns, pc.id)
	p.mu.Unlock()
	pc.c.teardown()
	p.g.wg.Done()
}

// loop waits for events and sweeps for idle connections until stop.
func (p *poller) loop() {
	defer p.wg.Done()
	defer close(p.jobs)
	events := make([]unix.EpollEvent, 128)
	next := time.Now().Add(p.every)
	for {
		wait := max(time.Until(next), 0)
		n, err := unix.EpollWait(p.epfd, events, int((wait+time.Millisecond-1)/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.g.log.Error("epoll_wait failed", "err", err)
			time.Sleep(p.every)
		}
		for i := range max(n, 0) {
			id := eventKey(&events[i])
			if id == 0 {
				return
			}
			p.mu.Lock()
			pc := p.conns[id]
			p.mu.Unlock()
			if pc != nil && pc.take() {
				p.jobs <- pc
			}
		}
		if !time.Now().Before(next) {
			p.sweep()
			next = time.Now().Add(p.every)
		}
	}
}

// sweep hands every parked connection past its readBy to a worker, which
// ends it.
func (p *poller) sweep() {
	now := time.Now().UnixNano()
	p.mu.Lock()
	for _, pc := range p.conns {
		if pc.readBy.Load() < now {
			p.stale = append(p.stale, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range p.stale {
		if pc.take() {
			p.jobs <- pc
		}
	}
	clear(p.stale)
	p.stale = p.stale[:0]
}

// work serves connections until the loop ends.
func (p *poller) work() {
	defer p.wg.Done()
	for pc := range p.jobs {
		p.serve(pc)
	}
}

// shutdown ends the socket's traffic both ways, which wakes the poller
// (end of input) and any blocked read or write, and leaves the descriptor
// open: the worker that sees the end unregisters it, then closes it.
func (pc *pollConn) shutdown() {
	_ = pc.raw.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) }) //nolint:gosec // a descriptor fits an int
}
