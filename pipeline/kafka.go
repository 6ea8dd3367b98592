package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Sentinel errors.
var (
	// ErrClosed is returned by Run after Close, or when Run is called again
	// after it returned.
	ErrClosed = errors.New("pipeline: closed")
	// ErrRunning is returned by a second, concurrent call to Run.
	ErrRunning = errors.New("pipeline: already running")
	// ErrInvalidConfig wraps every configuration error returned by New*.
	ErrInvalidConfig = errors.New("pipeline: invalid config")
)

// ClientOptions returns Herald's base franz-go options for a client talking
// to brokers, followed by extra (later options override earlier ones). When
// brokers is empty, extra must carry kgo.SeedBrokers.
//
// Producing is idempotent with acks=all (franz-go's defaults, kept on
// purpose: the API answers 202 only once every in-sync replica has the
// event), records are key-hashed to partitions like the Java client, so a
// user id always maps to the same partition whatever the producer.
func ClientOptions(brokers []string, extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ClientID("herald"),
		kgo.DialTimeout(10 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Bounded: producers block (honouring their context) rather than
		// buffer without limit when Kafka is slow.
		kgo.MaxBufferedRecords(10000),
	}
	if len(brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(brokers...))
	}
	return append(opts, extra...)
}

// lifecycle is the Run/Close protocol shared by the Enricher and the Router:
// Run may be called once; Close stops it and waits for it to return.
type lifecycle struct {
	quit     chan struct{} // closed by stop
	done     chan struct{} // closed when Run returns
	running  atomic.Bool
	quitOnce sync.Once
}

func newLifecycle() lifecycle {
	return lifecycle{quit: make(chan struct{}), done: make(chan struct{})}
}

// begin marks Run as started. On success the caller must call end when Run
// returns.
func (l *lifecycle) begin() error {
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

func (l *lifecycle) end() { close(l.done) }

// runContext derives Run's context, also canceled by stop. release must be
// called before Run returns; it ends the watcher goroutine.
func (l *lifecycle) runContext(parent context.Context) (ctx context.Context, release func()) {
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

// stop makes a running Run return and waits for it.
func (l *lifecycle) stop() {
	l.quitOnce.Do(func() { close(l.quit) })
	if l.running.Load() {
		<-l.done
	}
}
