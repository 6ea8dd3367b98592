package dlq

import (
	"testing"

	"github.com/heraldhq/herald"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// A DLQ whose replay group has never existed has had nothing replayed:
// its depth is end minus start offsets, also once retention (here
// DeleteRecords) has moved the start, and the collector counts no error.
// This was the suspected cause of the failing scrapes against herald dev's
// kfake; it is not (see app/dlqdepth.go), and this pins it.
func TestDepthWithoutReplayGroup(t *testing.T) {
	e := newEnv(t)
	push := mustTopic(t, e.names, Push)
	groups, err := e.adm.ListGroups(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[push.Group]; ok {
		t.Fatalf("replay group %s exists before any replay", push.Group)
	}
	job := herald.PushJob{UserID: "alice", Notification: herald.Notification{ID: "n1", Seq: 1, EventID: "ev"}}
	src, err := e.codec.Push(&job)
	if err != nil {
		t.Fatal(err)
	}
	e.writeDLQ(Push, true, dead{src: src, reason: "a"}, dead{src: src, reason: "b"}, dead{src: src, reason: "c"})
	if n, err := Depth(e.ctx, e.adm, push); err != nil || n != 3 {
		t.Fatalf("depth %d, %v; want 3", n, err)
	}
	// The record written lands on one partition: delete its first.
	ends, err := e.adm.ListEndOffsets(e.ctx, push.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			del.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: 1})
		}
	})
	if _, err := e.adm.DeleteRecords(e.ctx, del); err != nil {
		t.Fatal(err)
	}
	if n, err := Depth(e.ctx, e.adm, push); err != nil || n != 3-int64(len(del[push.DLQ])) {
		t.Fatalf("depth after deleting the first record of %d partitions: %d, %v", len(del[push.DLQ]), n, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewDepthCollector(DepthConfig{Admin: e.adm, Logger: quietLog}))
	if got := gatherDepth(t, reg); len(got) != 2 || got["herald.events.dlq"] != 0 {
		t.Errorf("depth series %v, want both DLQs, events 0", got)
	}
	if n := gatherErrors(t, reg); n != 0 {
		t.Errorf("%v failed measures", n)
	}
}

// gatherErrors sums herald_dlq_depth_errors_total over the DLQs.
func gatherErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "herald_dlq_depth_errors_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
