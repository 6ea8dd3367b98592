package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EventWriter produces validated events to herald.events (the API's event
// intake). It implements api.EventSink.
type EventWriter struct {
	cl    *kgo.Client
	codec Codec
	now   func() time.Time
}

// NewEventWriter returns an EventWriter producing through cl, which must
// be configured with acks=all (ClientOptions does; it is franz-go's
// default), to names.Events; zero names mean topics.WithPrefix(""). The
// caller keeps ownership of cl.
func NewEventWriter(cl *kgo.Client, names topics.Names) *EventWriter {
	return &EventWriter{cl: cl, codec: NewCodec(names), now: time.Now}
}

// SendEvents produces one record per event, keyed by user id (by event
// id for a multi-recipient event: Codec.Event), with the
// canonical encoding of each event, and returns once Kafka acknowledged
// every one of them. On error some events may have been written: the
// enricher deduplicates by event id, so the caller may retry the batch.
func (w *EventWriter) SendEvents(ctx context.Context, events []herald.Event) error {
	if len(events) == 0 {
		return nil
	}
	ts := w.now()
	rs := make([]*kgo.Record, len(events))
	for i := range events {
		r, err := w.codec.Event(&events[i], ts)
		if err != nil {
			return err
		}
		rs[i] = r
	}
	if err := produceWithin(ctx, w.cl, rs); err != nil {
		return fmt.Errorf("produce %d events to %s: %w", len(rs), w.codec.Names.Events, err)
	}
	return nil
}

// Producer is the part of a *kgo.Client that produces.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

var _ Producer = (*kgo.Client)(nil)

// produceWithin produces rs through cl and waits for every
// acknowledgement or for ctx, whichever comes first.
//
// Not ProduceSync: an idempotent producer does not fail a record through
// its context once the record was sent, so during an outage ProduceSync
// outlives any deadline. Waiting on the promises or ctx keeps the
// caller's deadline; records acked after it must be harmless duplicates
// (the enricher drops events by id; a catch-up is idempotent).
func produceWithin(ctx context.Context, cl Producer, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	var (
		mu      sync.Mutex
		first   error
		pending = len(rs)
		done    = make(chan struct{})
	)
	for _, r := range rs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if pending--; pending == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}
