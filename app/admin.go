package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/heraldhq/herald/internal/lograte"
)

// The admin listener's bounds. A CPU profile or an execution trace is one
// response written over ?seconds=N (30 s by default), and net/http/pprof
// refuses a duration at or past the server's WriteTimeout: hence two
// minutes for writes, where every other bound stays short. Nothing else is
// served there, so these are not settings.
const (
	adminReadHeaderTimeout = 10 * time.Second
	adminReadTimeout       = 30 * time.Second
	adminWriteTimeout      = 2 * time.Minute
	adminIdleTimeout       = 60 * time.Second
)

// adminHandler is net/http/pprof's handlers on a mux of their own. The
// package also registers them on http.DefaultServeMux when imported; no
// Herald listener serves that mux, so they are reachable only here.
func adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, allocs, block, mutex…
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveAdmin starts the admin listener on the Config's AdminAddr, when
// set: profiles, goroutine dumps and the command line for whoever can
// reach it, which is why it is opt-in, separate from the public listener
// and meant for loopback or a private interface (a warning says so when
// it is bound elsewhere). Shutdown closes it after the roles have
// stopped, so a shutdown that hangs can still be inspected.
func (p *Process) serveAdmin() error {
	addr := p.cfg.AdminAddr
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", addr, err)
	}
	p.admin = &http.Server{
		Handler:           adminHandler(),
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		// net/http's own errors (a client's TLS or protocol mistakes,
		// handler panics) go to the process's log, rate-limited, not to
		// the standard logger's stderr.
		ErrorLog: lograte.ErrorLog(p.log, "admin-http", lograte.Config{}),
	}
	p.adminLn = ln
	srv := p.admin
	p.g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin listener: %w", err)
		}
		return nil
	})
	bound := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && !tcp.IP.IsPrivate() {
		p.log.Warn("admin listener (pprof) is reachable beyond loopback and private networks: bind --admin-addr to 127.0.0.1 or a private interface",
			"addr", bound)
	} else {
		p.log.Info("admin listener (pprof at /debug/pprof/)", "addr", bound)
	}
	return nil
}

// AdminAddr is the admin listener's address, nil when --admin-addr is
// empty or before Serve.
func (p *Process) AdminAddr() net.Addr {
	if p.adminLn == nil {
		return nil
	}
	return p.adminLn.Addr()
}

// closeAdmin closes the admin listener and its connections at once: a
// profile being taken is cut, which loses nothing durable.
func (p *Process) closeAdmin() {
	if p.admin == nil {
		return
	}
	if err := p.admin.Close(); err != nil {
		p.log.Warn("closing the admin listener", "err", err)
	}
}
