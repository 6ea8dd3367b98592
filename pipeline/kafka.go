package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sentinel errors.
var (
	// ErrClosed is returned by Run after Close, or when Run is called again
	// after it returned.
	ErrClosed = fmt.Errorf("pipeline: %w", lifecycle.ErrClosed)
	// ErrRunning is returned by a second, concurrent call to Run.
	ErrRunning = fmt.Errorf("pipeline: %w", lifecycle.ErrRunning)
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

// begin starts Run on lc, returning this package's sentinels.
func begin(lc *lifecycle.Lifecycle) error {
	err := lc.Begin()
	switch {
	case errors.Is(err, lifecycle.ErrClosed):
		return ErrClosed
	case errors.Is(err, lifecycle.ErrRunning):
		return ErrRunning
	}
	return err
}
