// Package lifecycle is the one way Herald's long-running components start,
// run and stop: a Lifecycle gives a component the Run-once / Close-many
// protocol, a Group tracks the goroutines a process starts so that shutdown
// can wait for every one of them, and Supervise keeps a component running,
// rebuilding it after a fatal error.
//
// Each component owns one Lifecycle. Its Run calls Begin first and End on
// return, and derives its context with Context so that Stop (from Close)
// interrupts it; Close calls Stop and then releases its resources. Stop is
// idempotent and may race with Run: a Run that begins after Stop returns
// ErrClosed at once.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/retry"
)

// Errors of Begin. Components return them from Run (wrapped or as is).
var (
	// ErrClosed: Run after Close, or Run called again after it returned.
	ErrClosed = errors.New("closed")
	// ErrRunning: a second, concurrent Run.
	ErrRunning = errors.New("already running")
)

// Lifecycle is the Run/Close protocol of one component: Run may be called
// once; Stop makes it return and waits for it. The zero value is ready to
// use and must not be copied after first use.
type Lifecycle struct {
	init     sync.Once
	quit     chan struct{} // closed by Stop
	done     chan struct{} // closed when Run returns
	running  atomic.Bool
	quitOnce sync.Once
}

func (l *Lifecycle) lazy() {
	l.init.Do(func() {
		l.quit = make(chan struct{})
		l.done = make(chan struct{})
	})
}

// Begin marks Run as started. On success the caller must call End when Run
// returns. It fails with ErrRunning while another Run is active and with
// ErrClosed after Stop or after an earlier Run returned.
func (l *Lifecycle) Begin() error {
	l.lazy()
	if !l.running.CompareAndSwap(false, true) {
		select {
		case <-l.done:
			return ErrClosed
		default:
			return ErrRunning
		}
	}
	select {
	case <-l.quit:
		close(l.done)
		return ErrClosed
	default:
		return nil
	}
}

// End marks Run as returned; call it once, after a successful Begin.
func (l *Lifecycle) End() { close(l.done) }

// Context derives Run's context from parent; it is also canceled by Stop.
// release must be called before Run returns; it ends the watcher goroutine.
func (l *Lifecycle) Context(parent context.Context) (ctx context.Context, release func()) {
	l.lazy()
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-l.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(); wg.Wait() }
}

// Stopping is closed once Stop was called.
func (l *Lifecycle) Stopping() <-chan struct{} {
	l.lazy()
	return l.quit
}

// Stop makes a running Run return and waits for it; without a Run it only
// makes a later one fail with ErrClosed. It is idempotent and safe for
// concurrent use.
func (l *Lifecycle) Stop() {
	l.lazy()
	l.quitOnce.Do(func() { close(l.quit) })
	if l.running.Load() {
		<-l.done
	}
}

// Group runs tracked goroutines: every goroutine a process starts goes
// through Go, so that Wait knows when all have exited. The zero value is
// ready to use.
type Group struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Go runs f in a tracked goroutine and records its error.
func (g *Group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}()
}

// Wait blocks until every goroutine has returned and joins their errors.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// Runner is a long-running component: Run blocks until ctx ends, Close is
// called or a fatal error occurs; Close stops it and releases it.
type Runner interface {
	Run(ctx context.Context) error
	Close()
}

// SuperviseConfig tunes Supervise. Zero values mean the documented default.
type SuperviseConfig struct {
	// Name labels the logs. Zero value: "component".
	Name string
	// Logger receives a line per restart. Zero value: slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered delay between a failure
	// and the next build. Zero values: 200ms and 10s.
	MinBackoff, MaxBackoff time.Duration
}

// Supervise runs components made by build on g until ctx ends, rebuilding
// one whose Run returned while ctx is still live (a fatal Kafka transaction
// error, say): nothing is lost because uncommitted work is replayed by the
// next instance. A build error ends the loop and is g's error. It returns a
// stop function that closes the current instance and waits for the loop;
// stop is idempotent.
func Supervise(ctx context.Context, g *Group, cfg SuperviseConfig, build func() (Runner, error)) (stop func()) {
	if cfg.Name == "" {
		cfg.Name = "component"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var cur Runner
	done := make(chan struct{})
	g.Go(func() error {
		defer close(done)
		bo := retry.Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}
		for ctx.Err() == nil {
			r, err := build()
			if err != nil {
				cancel()
				return err
			}
			mu.Lock()
			cur = r
			mu.Unlock()
			err = r.Run(ctx)
			r.Close()
			if ctx.Err() != nil {
				return nil
			}
			d := bo.Next()
			cfg.Logger.Error(cfg.Name+" stopped, restarting", "err", err, "backoff", d)
			if !retry.Sleep(ctx, d) {
				return nil
			}
		}
		return nil
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			mu.Lock()
			r := cur
			mu.Unlock()
			if r != nil {
				r.Close()
			}
		})
		<-done
	}
}
