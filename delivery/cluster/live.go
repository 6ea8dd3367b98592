package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
)

// PublishLive implements pipeline.LivePublisher, the enricher's direct
// path: it publishes each notification to every live gateway of its user
// (the route of Deliver, without a local gateway and without the online
// answer), all of ns in one pipelined round trip, in order. Used by a
// Cluster without a Local that is not Run (the enricher's).
//
// Best effort: Redis down, a cooldown after a failure, or a gateway that
// misses the message only delays the notification until the router
// delivers it from herald.deliveries, or the connection's gap fill or
// position check reads it from the inbox. The error says why nothing (or
// not everything) was published.
func (c *Cluster) PublishLive(ctx context.Context, ns []herald.UserNotification) error {
	if len(ns) == 0 || c.closed() {
		return nil
	}
	if c.routeDown.Active() {
		c.m.routeSkipped.Add(float64(len(ns)))
		return errRouteSkipped
	}
	keys := make([][]string, len(ns))
	payloads := make([][]byte, len(ns))
	for i := range ns {
		p, err := encodeNotification(ns[i].UserID, &ns[i].Notification)
		if err != nil {
			return fmt.Errorf("cluster: encode notification %d of %s: %w", ns[i].Notification.Seq, ns[i].UserID, err)
		}
		keys[i], payloads[i] = []string{c.presenceKey(ns[i].UserID)}, p
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cmds, err := c.publishLive(ctx, keys, payloads)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A restarted or flushed Redis forgot the script: no command ran
		// it, so loading it and sending the whole pipeline again publishes
		// nothing twice.
		if err = routeScript.Load(ctx, c.rdb).Err(); err == nil {
			cmds, err = c.publishLive(ctx, keys, payloads)
		}
	}
	if err != nil {
		c.routeFailed(ctx, err, "notifications", len(ns))
		return err
	}
	for _, cmd := range cmds {
		res, _ := cmd.Slice()
		for i := 0; i+1 < len(res); i += 2 {
			if n, _ := res[i+1].(int64); n > 0 {
				c.m.forwardedLive.Inc()
			} else {
				c.m.stale.Inc()
			}
		}
	}
	return nil
}

// publishLive sends one EVALSHA of routeScript per notification in one
// pipeline; ARGV[2], the gateway to skip, is this Cluster's id, which no
// gateway shares.
func (c *Cluster) publishLive(ctx context.Context, keys [][]string, payloads [][]byte) ([]*redis.Cmd, error) {
	now := time.Now().UnixMilli()
	cmds := make([]*redis.Cmd, len(keys))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range keys {
			cmds[i] = routeScript.EvalSha(ctx, p, keys[i], now, c.cfg.GatewayID, c.chanPrefix, payloads[i])
		}
		return nil
	})
	return cmds, err
}
