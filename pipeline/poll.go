package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pollLoop is the one Kafka consume loop of Herald's components (the
// enricher, the router, the pusher to come): poll, back off on fetch
// errors, hand each non-empty batch to handle, and retry or give up
// according to the class of handle's error.
type pollLoop struct {
	// poll fetches up to max records (kgo.Client.PollRecords or
	// kgo.GroupTransactSession.PollRecords).
	poll func(ctx context.Context, max int) kgo.Fetches
	max  int
	// handle processes one non-empty batch. nil: done, poll the next one.
	// A fatal error (errclass.ClassFatal) ends the loop with it; any other
	// error means the batch was not done and will be polled again (the
	// handler has rewound, or will be handed it again): the loop backs
	// off first. Handlers deal with permanent errors of single records
	// themselves (dead letter); one that reaches the loop is retried.
	handle func(ctx context.Context, fetches kgo.Fetches) error
	// afterPoll, if set, runs after every poll once its records were
	// handled or given up (the router allows rebalances there).
	afterPoll func()
	// drain lets a batch that is being handled when ctx ends finish: handle
	// runs under a context canceled only drain after ctx ends (or when it
	// returns). The pusher sets it, whose sends are side effects that a
	// graceful stop must record (their progress marks) rather than cut off
	// and make again after the restart. Zero: handle runs under ctx.
	drain   time.Duration
	log     *slog.Logger
	backoff retry.Backoff
}

// drainContext returns a context that carries ctx's values and is
// canceled d after ctx ends, or by stop. stop must be called.
func drainContext(ctx context.Context, d time.Duration) (context.Context, func()) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		timer = time.AfterFunc(d, cancel)
		mu.Unlock()
	})
	return hctx, func() {
		stopAfter()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// run polls until ctx is done (nil), the client is closed (ErrClosed) or
// handle returns a fatal error (returned as is).
func (l *pollLoop) run(ctx context.Context) error {
	after := func() {
		if l.afterPoll != nil {
			l.afterPoll()
		}
	}
	hctx := ctx
	if l.drain > 0 {
		var stop func()
		hctx, stop = drainContext(ctx, l.drain)
		defer stop()
	}
	for {
		fetches := l.poll(ctx, l.max)
		if fetches.IsClientClosed() {
			return ErrClosed
		}
		if ctx.Err() != nil {
			after()
			return nil //nolint:nilerr // ctx ended: Run's contract is to return nil
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			fetchErr = err
			if !errors.Is(err, context.Canceled) {
				l.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if fetches.NumRecords() == 0 {
			after()
			if fetchErr != nil && !retry.Sleep(ctx, l.backoff.Next()) {
				return nil //nolint:nilerr // shut down while backing off: not an error
			}
			continue
		}
		err := l.handle(hctx, fetches)
		after()
		switch {
		case err == nil:
			l.backoff.Reset()
		case errclass.IsFatal(err):
			return err
		case ctx.Err() != nil:
			return nil //nolint:nilerr // the batch failed because of shutdown: not an error
		default:
			d := l.backoff.Next()
			l.log.Warn("batch failed, retrying", "records", fetches.NumRecords(), "class", errclass.Of(err), "backoff", d, "err", err)
			if !retry.Sleep(ctx, d) {
				return nil
			}
		}
	}
}
