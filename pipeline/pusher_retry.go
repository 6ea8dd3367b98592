package pipeline

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// afterRewind drops the records of a rewound partition that come before
// its rewind takes effect (fetched earlier, past the rewind point).
func (p *Pusher) afterRewind(fp kgo.FetchTopicPartition) []*kgo.Record {
	tp := topicPartition{fp.Topic, fp.Partition}
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	at, ok := p.rewound[tp]
	if !ok {
		return fp.Records
	}
	for i, r := range fp.Records {
		if r.Offset == at {
			delete(p.rewound, tp)
			return fp.Records[i:]
		}
	}
	return nil
}

// forget drops the pause state of partitions this member no longer owns
// and resumes them, so that a later assignment fetches from the committed
// offset at once.
func (p *Pusher) forget(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	p.pauseMu.Lock()
	for topic, parts := range lost {
		for _, part := range parts {
			tp := topicPartition{topic, part}
			delete(p.rewound, tp)
			if t, ok := p.timers[tp]; ok {
				t.Stop()
				delete(p.timers, tp)
			}
		}
	}
	p.pauseMu.Unlock()
	// Outside the lock: kgo calls this with its group state held.
	cl.ResumeFetchPartitions(lost)
}

// pause stops fetching tp, rewinds it to r and resumes it at wake.
func (p *Pusher) pause(tp topicPartition, r *kgo.Record, wake time.Time) {
	parts := map[string][]int32{tp.topic: {tp.partition}}
	// kgo calls outside pauseMu: forget takes it from kgo's callbacks.
	p.cl.PauseFetchPartitions(parts)
	p.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: r.Offset}}})
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	p.rewound[tp] = r.Offset
	if t, ok := p.timers[tp]; ok {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(max(wake.Sub(p.cfg.Now()), time.Millisecond), func() {
		p.pauseMu.Lock()
		mine := p.timers[tp] == t
		if mine {
			delete(p.timers, tp)
		}
		p.pauseMu.Unlock()
		if mine {
			p.cl.ResumeFetchPartitions(parts)
		}
	})
	p.timers[tp] = t
}

// schedule produces a retry record of t's job for tokens (nil: all
// devices) after wait, with attempts sends made.
func (p *Pusher) schedule(t *pushTask, tokens []string, attempts int, wait time.Duration, reason string) error {
	job := t.job
	job.Attempt = attempts
	m := pushMeta{notBefore: t.now.Add(wait), tokens: tokens, delayed: t.meta.delayed, reason: reason}
	r, err := p.codec.pushRetry(p.tierFor(wait), &job, &m, t.now)
	if err != nil {
		return err
	}
	label := reason
	if reason != "delay" && reason != "circuit_open" {
		label = "transient"
	}
	p.m.retries.WithLabelValues(label).Inc()
	t.out = append(t.out, r)
	return nil
}

// giveUp dead-letters t's job for tokens with reason.
func (p *Pusher) giveUp(t *pushTask, tokens []string, reason string, attempts int) {
	r, err := p.codec.pushGiveUp(t.rec, t.job, tokens, reason, attempts)
	if err != nil { // the job was decoded from JSON: unreachable
		p.log.Error("cannot encode a push dead letter", "user", t.job.UserID, "job", t.jobID, "err", err)
		return
	}
	p.m.dlq.WithLabelValues(reason).Inc()
	t.out = append(t.out, r)
}

// tierFor is the retry topic for a wait: the smallest tier at least as
// long, else the longest.
func (p *Pusher) tierFor(wait time.Duration) string {
	tiers := p.cfg.RetryTiers
	i := sort.Search(len(tiers), func(i int) bool { return tiers[i] >= wait })
	if i == len(tiers) {
		i--
	}
	return p.cfg.Topics.PushRetry(tiers[i])
}
