package app

import "log/slog"

// fileLimit is the process's RLIMIT_NOFILE around raiseFileLimit: every
// WebSocket, SSE stream and long poll holds a file, so the soft limit is
// the gateway's real bound on connections.
type fileLimit struct {
	Before uint64 // soft limit found (Go's runtime may have raised it already)
	Soft   uint64 // soft limit now
	Hard   uint64
	// Supported is false where raiseFileLimit is a no-op (not Linux).
	Supported bool
}

// startFileLimit raises the soft RLIMIT_NOFILE to the hard limit and logs
// both; a gateway calls it when it starts. Go's runtime (since 1.19)
// already raises the soft limit to one below the hard one when the
// process starts: this takes the last file, states the limit in the log,
// and warns when it is below --http-max-conns, which then cannot be
// reached.
func (p *Process) startFileLimit(log *slog.Logger) {
	fl, err := raiseFileLimit()
	logFileLimit(log, fl, err, p.cfg.HTTPMaxConns)
}

// logFileLimit logs the outcome of raiseFileLimit: info, or a warning when
// raising failed or the soft limit is below maxConns.
func logFileLimit(log *slog.Logger, fl fileLimit, err error, maxConns int) {
	if !fl.Supported {
		return
	}
	attrs := []any{"soft", fl.Soft, "hard", fl.Hard, "soft_before", fl.Before}
	switch {
	case err != nil:
		log.Warn("could not raise the open file limit (RLIMIT_NOFILE) to its hard limit", append(attrs, "err", err)...)
	case maxConns > 0 && fl.Soft < uint64(maxConns):
		log.Warn("open file limit (RLIMIT_NOFILE) below --http-max-conns: connections past it fail to be accepted; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
			append(attrs, "http_max_conns", maxConns)...)
	default:
		log.Info("open file limit (RLIMIT_NOFILE)", attrs...)
	}
}
