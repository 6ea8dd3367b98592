package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fetchOf(recs ...*kgo.Record) kgo.Fetches {
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Partition: 0, Records: recs}}}}}}
}

func fetchErr(err error) kgo.Fetches {
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Partition: 0, Err: err}}}}}}
}

// script is a poll function answering from a list, then blocking until
// ctx is done.
func script(fs ...kgo.Fetches) func(context.Context, int) kgo.Fetches {
	return func(ctx context.Context, _ int) kgo.Fetches {
		if len(fs) > 0 {
			f := fs[0]
			fs = fs[1:]
			return f
		}
		<-ctx.Done()
		return kgo.Fetches{}
	}
}

func TestPollLoop(t *testing.T) {
	t.Parallel()
	rec := &kgo.Record{Topic: "t", Value: []byte("v")}
	transient := errors.New("store unavailable")
	fatal := errclass.Fatal(errors.New("fenced"))

	t.Run("retries transient, returns fatal", func(t *testing.T) {
		var handled, polls, afters int
		poll := script(fetchErr(errors.New("broker gone")), fetchOf(rec), fetchOf(rec), fetchOf(rec))
		l := pollLoop{
			poll: func(ctx context.Context, n int) kgo.Fetches { polls++; return poll(ctx, n) },
			max:  10,
			handle: func(context.Context, kgo.Fetches) error {
				handled++
				switch handled {
				case 1:
					return transient
				case 2:
					return errclass.Permanent(transient) // not handled by the handler: retried too
				}
				return fatal
			},
			afterPoll: func() { afters++ },
			log:       quietLog,
			backoff:   retry.Backoff{Min: time.Millisecond, Max: time.Millisecond},
		}
		if err := l.run(context.Background()); !errors.Is(err, fatal) {
			t.Fatalf("run = %v, want the fatal error", err)
		}
		if handled != 3 || polls != 4 || afters != 4 {
			t.Fatalf("handled %d polls %d afterPoll %d", handled, polls, afters)
		}
	})

	t.Run("returns nil on ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l := pollLoop{
			poll: script(fetchOf(rec)),
			max:  10,
			handle: func(ctx context.Context, _ kgo.Fetches) error {
				cancel()
				return ctx.Err()
			},
			log:     quietLog,
			backoff: retry.Backoff{Min: time.Hour, Max: time.Hour},
		}
		if err := l.run(ctx); err != nil {
			t.Fatalf("run = %v", err)
		}
	})

	t.Run("client closed", func(t *testing.T) {
		l := pollLoop{
			poll:    script(fetchErr(kgo.ErrClientClosed)),
			handle:  func(context.Context, kgo.Fetches) error { t.Fatal("handled"); return nil },
			log:     quietLog,
			backoff: retry.Backoff{Min: time.Millisecond, Max: time.Millisecond},
		}
		if err := l.run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("run = %v", err)
		}
	})
}

// TestDrainContext: the handler's context outlives the loop's by the
// drain, and no longer.
func TestDrainContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	hctx, stop := drainContext(parent, time.Hour)
	cancel()
	if err := hctx.Err(); err != nil {
		t.Fatalf("canceled with its parent: %v", err)
	}
	if hctx.Value(key{}) != "v" {
		t.Fatal("the parent's values are lost")
	}
	stop()
	if hctx.Err() == nil {
		t.Fatal("stop did not cancel it")
	}

	parent, cancel = context.WithCancel(context.Background())
	hctx, stop = drainContext(parent, time.Millisecond)
	defer stop()
	cancel()
	<-hctx.Done() // the drain ran out
}
