package cluster

import (
	"context"
	"fmt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// Live broadcasts (docs/ARCHITECTURE.md, "Live broadcasts"): the fan-out
// stage's publish-only Cluster PUBLISHes each live broadcast once, as a
// {"k":"b","b":…} message, on the channel every gateway's subscription
// also reads (broadcasts, or <prefix>broadcasts); each gateway frames it
// for its own members (delivery.Gateway.Broadcast). One message per
// broadcast whatever the number of gateways or members. Pub/sub is at
// most once: a gateway that is resubscribing misses it, and its members
// take the broadcast from their inbox as everyone does.
//
// PreferencesChanged is routed like MembershipChanged, to the user's
// gateways, so that what a gateway checks before framing a broadcast
// follows PUT /v1/preferences.

// LocalBroadcasts is the optional part of Local for live broadcasts;
// *delivery.Gateway implements it (with Config.Memberships and
// Config.Preferences set).
type LocalBroadcasts interface {
	// Broadcast frames b for the local members of its topic.
	Broadcast(ctx context.Context, b herald.Broadcast) (int, error)
	// PreferencesChanged updates the user's preferences if they are
	// connected here.
	PreferencesChanged(ctx context.Context, userID string, p herald.Preferences)
}

var _ LocalBroadcasts = (*delivery.Gateway)(nil)

func broadcastsOf(l Local) LocalBroadcasts {
	lb, _ := l.(LocalBroadcasts)
	return lb
}

// Broadcast publishes b to every gateway subscribed now, in one Redis
// round trip bounded by Timeout, and returns how many received it (the
// answer of PUBLISH). It needs no local gateway and no Run.
func (c *Cluster) Broadcast(ctx context.Context, b herald.Broadcast) (int, error) {
	if c.closed() {
		return 0, nil
	}
	payload, err := encodeBroadcast(&b)
	if err != nil {
		return 0, fmt.Errorf("cluster: encode broadcast %s: %w", b.EventID, err)
	}
	if len(payload) > maxMessageBytes {
		return 0, fmt.Errorf("cluster: broadcast %s: %d bytes, more than %d", b.EventID, len(payload), maxMessageBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	n, err := c.rdb.Publish(ctx, c.bcChannel, payload).Result()
	if err != nil {
		if ctx.Err() == nil {
			c.redisFailed("broadcast", err, "event", b.EventID)
		}
		return 0, fmt.Errorf("cluster: publish broadcast %s: %w", b.EventID, err)
	}
	c.m.publishedBroadcasts.Inc()
	return int(n), nil
}

// PreferencesChanged tells the gateways holding userID the user's new
// preferences: it applies them to the attached gateway, if any, and
// routes them to the other gateways listed in presence (one Redis round
// trip bounded by Timeout). Call it after the change is stored. Failures
// are logged and counted; the gateways read the preferences again at the
// user's next first connection.
func (c *Cluster) PreferencesChanged(ctx context.Context, userID string, p herald.Preferences) {
	if lb := broadcastsOf(c.localOf()); lb != nil {
		lb.PreferencesChanged(ctx, userID, p)
	}
	if c.closed() {
		return
	}
	payload, err := encodePreferences(userID, &p)
	if err != nil { // plain data: unreachable
		c.log.Error("cannot encode a preferences message", "user", userID, "err", err)
		return
	}
	if _, err := c.route(ctx, userID, payload, c.m.forwardedPreferences); err != nil {
		c.routeFailed(ctx, err, "user", userID)
	}
}
