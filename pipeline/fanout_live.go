package pipeline

import (
	"context"
	"time"

	herald "github.com/heraldhq/herald"
)

// LiveBroadcaster sends a large audience's broadcast live to the topic's
// connected members who asked for it (docs/ARCHITECTURE.md, "Live
// broadcasts"), ahead of their inbox copies: delivery.Gateway in one
// process (n: frames queued), delivery/cluster.Cluster across gateways
// (n: gateways reached). Best effort: the members' inbox copies follow
// whatever it does.
type LiveBroadcaster interface {
	Broadcast(ctx context.Context, b herald.Broadcast) (n int, err error)
}

// broadcastLive offers ev, just put in its feed, for live delivery,
// unless the policy governs its type (a digest, a rate limit or a cap
// decides per member in the enricher, which a gateway cannot). It runs
// inside the batch, before the transaction commits: the item is durable
// in the feed already, so every member takes it into their inbox whatever
// becomes of the batch; a batch expanded again publishes again, and the
// gateways drop the repeat.
//
// It reports whether a gateway received it, when the batch then holds
// its catch-ups (holdFor).
func (f *Fanout) broadcastLive(ctx context.Context, ev *herald.Event) (sent bool) {
	if f.cfg.Broadcasts == nil {
		return false
	}
	if f.cfg.Policy != nil {
		if pol := f.cfg.Policy(); pol != nil && pol.Governs(ev) {
			f.m.livePublished.WithLabelValues("governed").Inc()
			return false
		}
	}
	n, err := f.cfg.Broadcasts.Broadcast(ctx, herald.NewBroadcast(ev))
	if err != nil {
		f.m.livePublished.WithLabelValues("error").Inc()
		f.log.Warn("cannot publish a broadcast live; its members take it from their inbox",
			"topic", ev.Audience, "event", ev.ID, "err", err)
		return false
	}
	f.m.livePublished.WithLabelValues("published").Inc()
	if !ev.CreatedAt.IsZero() {
		f.m.liveDelay.Observe(time.Since(ev.CreatedAt).Seconds())
	}
	f.log.Debug("broadcast published live", "topic", ev.Audience, "event", ev.ID, "reached", n)
	return n > 0
}

// holdFor waits until the latest hold of the batch's pages (a broadcast
// sent live, FanoutConfig.LiveHold), or until ctx ends or Close is
// called: a hold never delays a shutdown.
func (f *Fanout) holdFor(ctx context.Context, pages []page) {
	var until time.Time
	for _, pg := range pages {
		if pg.hold.After(until) {
			until = pg.hold
		}
	}
	d := time.Until(until)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		f.m.liveHeld.Observe(d.Seconds())
	case <-ctx.Done():
	case <-f.closing:
	}
}
