package dlq

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ListOptions shape a listing.
type ListOptions struct {
	// Limit bounds the entries kept: the Limit newest matching ones. The
	// counts cover every match. Zero value: 100.
	Limit int
	// All lists from the log start, the dead letters a replay already
	// handled included (Entry.Pending false). Zero value: pending only.
	All bool
}

// maxReasons bounds the distinct reasons counted; the rest are summed
// under OtherReasons.
const maxReasons = 1000

// OtherReasons is the ReasonCount of the reasons past the first 1000
// distinct ones.
const OtherReasons = "(other reasons)"

// ReasonCount is how many dead letters have one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Listing is what List read.
type Listing struct {
	Topic Topic `json:"-"`
	// Entries are the newest matching dead letters (at most Limit), oldest
	// first.
	Entries []Entry `json:"entries"`
	// Read is the number of dead letters read, Matched the number the
	// filter selected.
	Read    int `json:"read"`
	Matched int `json:"matched"`
	// ByReason counts the matching dead letters by reason, most frequent
	// first.
	ByReason []ReasonCount `json:"by_reason"`
}

// List reads t's DLQ from the replay group's committed offsets (opt.All:
// from the log start) to the end offsets captured when it starts, without
// a group and without writing anything, and returns the dead letters
// cfg.Filter selects. It blocks until every partition was read to its
// captured end, or ctx is done.
func List(ctx context.Context, cfg Config, opt ListOptions) (*Listing, error) {
	t, err := cfg.setDefaults()
	if err != nil {
		return nil, err
	}
	if opt.Limit <= 0 {
		opt.Limit = 100
	}
	cl, adm, err := newAdmin(&cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ss, err := spans(ctx, adm, t)
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	from := func(s *span) int64 { return s.pending }
	if opt.All {
		from = func(s *span) int64 { return s.start }
	}
	l := &Listing{Topic: t, Entries: []Entry{}}
	var reasons reasonCounter
	err = readDirect(ctx, &cfg, t, adm, ss, from, func(r *kgo.Record, s *span) {
		e := decodeEntry(t, r)
		e.Pending = r.Offset >= s.pending
		l.Read++
		if !cfg.Filter.Match(&e, now) {
			return
		}
		l.Matched++
		reasons.add(e.Reason)
		l.Entries = append(l.Entries, e)
		if len(l.Entries) >= 2*opt.Limit {
			l.Entries = newest(l.Entries, opt.Limit)
		}
	})
	if err != nil {
		return nil, err
	}
	l.Entries = newest(l.Entries, opt.Limit)
	l.ByReason = reasons.sorted()
	return l, nil
}

// newest sorts es by time (then partition and offset) and keeps the last
// n.
func newest(es []Entry, n int) []Entry {
	sort.Slice(es, func(i, j int) bool {
		a, b := &es[i], &es[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	if len(es) > n {
		es = append(es[:0:0], es[len(es)-n:]...)
	}
	return es
}

// reasonCounter counts reasons, at most maxReasons distinct ones.
type reasonCounter struct {
	m     map[string]int
	other int
}

func (c *reasonCounter) add(reason string) {
	if c.m == nil {
		c.m = map[string]int{}
	}
	if _, ok := c.m[reason]; ok || len(c.m) < maxReasons {
		c.m[reason]++
		return
	}
	c.other++
}

func (c *reasonCounter) sorted() []ReasonCount {
	out := make([]ReasonCount, 0, len(c.m)+1)
	for r, n := range c.m {
		out = append(out, ReasonCount{r, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	if c.other > 0 {
		out = append(out, ReasonCount{OtherReasons, c.other})
	}
	return out
}
