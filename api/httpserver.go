package api

import (
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/lograte"
	"github.com/heraldhq/herald/internal/metrics"
)

// Defaults of HTTPConfig, also the defaults of the --http-* settings.
const (
	DefaultReadTimeout    = 30 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxConns       = 10_000
	DefaultMaxHeaderBytes = 64 << 10
	// maxHeaderTimeout caps the time to send the request headers.
	maxHeaderTimeout = 10 * time.Second
)

// HTTPConfig bounds every HTTP server of a herald process. Zero values
// mean the defaults above.
type HTTPConfig struct {
	// ReadTimeout bounds reading a whole request, headers and body;
	// 0 means 30s. Headers alone get at most 10s of it.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, from the end of the request
	// headers; 0 means 30s. A reader that stops reading is cut by it.
	// WebSockets set their own deadlines once upgraded.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long; 0 means 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; 0 means 64 KiB.
	// Past it net/http itself answers 431 (text, not JSON).
	MaxHeaderBytes int
	// MaxConns caps the open connections of the listener; 0 means 10,000.
	// One more is accepted, answered 503 with Retry-After and closed.
	MaxConns int
	// Logger receives net/http's own errors at warn, component=http,
	// rate-limited per message pattern (internal/lograte's defaults); nil
	// means slog.Default().
	Logger *slog.Logger
	// Registerer receives herald_http_connections_open and
	// herald_http_connections_refused_total; nil means metrics.Registry.
	Registerer prometheus.Registerer
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewHTTPServer is the http.Server of every role: h behind the read,
// write and idle timeouts and the header bound of cfg.
func NewHTTPServer(h http.Handler, cfg HTTPConfig) *http.Server {
	cfg = cfg.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(cfg.ReadTimeout, maxHeaderTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// net/http's own errors (TLS handshake failures, handler
		// panics): WARN, rate-limited per message pattern, so a scanner or
		// a misconfigured load balancer cannot flood the log.
		ErrorLog: lograte.ErrorLog(cfg.Logger, "http", lograte.Config{}),
	}
}

// Listener caps the open connections of a net.Listener. A connection
// over the cap is accepted, answered `503` with `Retry-After: 1` and a
// JSON error, and closed at once, so the client learns why instead of
// waiting in the kernel's backlog.
type Listener struct {
	net.Listener
	max     int
	mu      sync.Mutex
	open    int
	gauge   prometheus.Gauge
	refused prometheus.Counter
	total   int64 // refused, for Refused
}

// refusal is the whole answer to a connection over the cap.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
	"Retry-After: 1\r\nConnection: close\r\nContent-Length: 59\r\n\r\n" +
	`{"error":"too many open connections on this server, retry"}`

// NewListener wraps ln with the connection cap of cfg.
func NewListener(ln net.Listener, cfg HTTPConfig) *Listener {
	cfg = cfg.withDefaults()
	return &Listener{
		Listener: ln, max: cfg.MaxConns,
		gauge: metrics.Register(cfg.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Name: "http_connections_open", Help: "Open HTTP connections (WebSockets included).",
		})),
		refused: metrics.Register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "http_connections_refused_total", Help: "HTTP connections refused at the connection cap (answered 503 and closed).",
		})),
	}
}

// Accept returns the next connection under the cap, refusing those over it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open >= l.max {
			l.total++
			l.mu.Unlock()
			l.refused.Inc()
			// A fresh socket's send buffer is empty: this write does not
			// block, and the deadline makes sure of it.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write([]byte(refusal))
			_ = c.Close()
			continue
		}
		l.open++
		l.mu.Unlock()
		l.gauge.Inc()
		return &countedConn{Conn: c, l: l}, nil
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused is the number of connections refused at the cap so far.
func (l *Listener) Refused() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

type countedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
		c.l.gauge.Dec()
	})
	return err
}

// Unwrap gives the underlying connection (TLS, tests).
func (c *countedConn) Unwrap() net.Conn { return c.Conn }

// canonicalPaths answers a path ServeMux would redirect (`..`, `.`, `//`)
// itself, with the same 307 and Location but a JSON body.
func canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			if p := cleanPath(r.URL.Path); p != r.URL.Path {
				u := *r.URL
				u.Path, u.RawPath = p, ""
				w.Header().Set("Location", u.String())
				writeError(w, http.StatusTemporaryRedirect, "", "not a canonical path: use "+p)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is ServeMux's: path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}
