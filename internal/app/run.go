package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// group runs tracked goroutines: every goroutine a role starts goes through
// Go, so Wait knows when all have exited.
type group struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Go runs f in a tracked goroutine and records its error.
func (g *group) Go(f func() error) {
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
func (g *group) Wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// runner is a pipeline component: Run blocks until ctx ends or a fatal
// error, Close stops it.
type runner interface {
	Run(ctx context.Context) error
	Close()
}

// supervise runs components built by build until ctx ends, rebuilding one
// that fails (a fatal Kafka transaction error, say): nothing is lost
// because uncommitted work is replayed by the next instance. It returns a
// stop function that closes the current instance and waits for the loop.
func supervise(ctx context.Context, g *group, log *slog.Logger, name string, build func() (runner, error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var cur runner
	done := make(chan struct{})
	g.Go(func() error {
		defer close(done)
		backoff := 200 * time.Millisecond
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
			log.Error(name+" stopped, restarting", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
		}
		return nil
	})
	return func() {
		cancel()
		mu.Lock()
		r := cur
		mu.Unlock()
		if r != nil {
			r.Close()
		}
		<-done
	}
}
