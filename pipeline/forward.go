package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A user's inbox is written only through the store Writer of the user's
// partition (see writers), so every event of a user must be consumed from
// one partition: the one Kafka's default partitioner (murmur2 of the key,
// as in the Java client, franz-go and Herald's own producers) gives the
// user id. A record found elsewhere (a producer that hashes keys
// differently, e.g. librdkafka's default consistent_random; a key that is
// not the user id; partitions added to the topic since it was produced)
// is not processed where it is: the enricher forwards it, in the batch's
// transaction, to the user's own partition, keyed by the user id, where
// that partition's owner processes it like any other. Exactly once holds
// (the forward commits with the consumed offset); per-user order holds
// among the records of one partition, so a forwarded record is ordered by
// its arrival there.

// HeaderForwardedFrom marks a herald.events record the enricher forwarded
// to its user's partition: "<topic>/<partition>/<offset>" of the original.
const HeaderForwardedFrom = "herald-forwarded-from"

// eventsPartitioner is the partitioner of the records the enricher
// produces, forwards included, and the one userPartition mirrors.
var eventsPartitioner = kgo.StickyKeyPartitioner(nil)

// keyPartition is eventsPartitioner for any topic, made once: ForTopic
// seeds a random source (for unkeyed records), which is far dearer than
// hashing a key. Partitioning keyed records keeps no state, so it is safe
// for concurrent use.
var keyPartition = eventsPartitioner.ForTopic("")

// userPartition is the partition of n that the enricher's producer picks
// for a record keyed by userID (never empty: a valid event's user id).
func userPartition(userID string, n int) int32 {
	return int32(keyPartition.Partition(&kgo.Record{Key: []byte(userID)}, n))
}

// partitionCounts caches the partition count of the topics the enricher
// consumes. It is refreshed whenever the group moves partitions (forget),
// which is also what follows partitions being added to a topic.
type partitionCounts struct {
	cl *kgo.Client

	mu sync.Mutex
	n  map[string]int
}

func (p *partitionCounts) get(ctx context.Context, topic string) (int, error) {
	p.mu.Lock()
	n, ok := p.n[topic]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	tds, err := kadm.NewClient(p.cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("partition count of %s: %w", topic, err)
	}
	td, ok := tds[topic]
	switch {
	case ok && td.Err != nil:
		return 0, fmt.Errorf("partition count of %s: %w", topic, td.Err)
	case !ok || len(td.Partitions) == 0:
		return 0, fmt.Errorf("partition count of %s: no partitions in the topic metadata", topic)
	}
	n = len(td.Partitions)
	p.mu.Lock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	p.n[topic] = n
	p.mu.Unlock()
	return n, nil
}

// forget drops the cached counts; a kgo OnPartitionsRevoked /
// OnPartitionsLost callback.
func (p *partitionCounts) forget(context.Context, *kgo.Client, map[string][]int32) {
	p.mu.Lock()
	p.n = nil
	p.mu.Unlock()
}

// forwardEvent is the copy of r sent to userID's partition.
func forwardEvent(r *kgo.Record, userID string) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+1)
	for _, x := range r.Headers {
		if x.Key != HeaderForwardedFrom {
			h = append(h, x)
		}
	}
	h = append(h, kgo.RecordHeader{Key: HeaderForwardedFrom,
		Value: []byte(r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10))})
	return &kgo.Record{Topic: r.Topic, Key: []byte(userID), Value: r.Value, Headers: h}
}
