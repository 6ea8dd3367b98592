//go:build integration

package cluster

import (
	"context"
	"testing"
)

// BenchmarkDeliverRemote: gateway A's Deliver for a user connected to
// gateway B (one EVALSHA that publishes; B's subscriber queues it to the
// socket, whose frames the client drains).
func BenchmarkDeliverRemote(b *testing.B) {
	f := newFleet(b)
	a, gb := f.newNode(nil), f.newNode(nil)
	ws := gb.dial("u-bench")
	f.waitListed(a, "u-bench", gb, true)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	n := f.appendOne("u-bench")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n.Seq, n.Prev = uint64(i+2), uint64(i+1) // keep it live, not a duplicate
		if online, err := a.cl.Deliver(ctx, "u-bench", n); err != nil || !online {
			b.Fatalf("online=%v err=%v", online, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkDeliverAbsent: a user connected nowhere (the presence lookup
// finds nothing to publish to).
func BenchmarkDeliverAbsent(b *testing.B) {
	f := newFleet(b)
	a := f.newNode(nil)
	n := f.appendOne("u-none")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if online, err := a.cl.Deliver(ctx, "u-none", n); err != nil || online {
			b.Fatalf("online=%v err=%v", online, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
