package cluster

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/retry"
)

// subscribeLoop is Run's subscriber: it reads gw:<id> and hands each
// message to the local gateway, whose Deliver and PublishUnread only queue,
// so reading never waits on a client.
//
// go-redis re-dials and re-subscribes after a read or write error; a
// connection that fails silently (half-open TCP) is caught by pinging after
// a Heartbeat of silence and starting a new subscription when the ping is
// not answered within another. Every subscription confirmed after the first
// asks for a presence re-announce: Redis may have restarted empty. The
// first one closes subscribed, which lets the presence loop announce.
func (c *Cluster) subscribeLoop(ctx context.Context, l Local, subscribed chan<- struct{}) {
	ps := c.newPubSub(ctx)
	if ps == nil {
		return
	}
	subscriptions := 0
	pinged := false
	bo := retry.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		msg, err := ps.ReceiveTimeout(ctx, c.cfg.Heartbeat)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !isTimeout(err) {
				// Redis unreachable, or the connection broke: go-redis
				// reconnects on the next receive.
				c.redisFailed("subscribe", err)
				if !retry.Sleep(ctx, bo.Next()) {
					return
				}
				continue
			}
			if !pinged {
				pinged = true
				_ = ps.Ping(ctx) // a failed write makes go-redis reconnect
				continue
			}
			c.redisFailed("subscribe", errors.New("no answer to a ping: starting a new subscription"))
			if ps = c.newPubSub(ctx); ps == nil {
				return
			}
			pinged = false
			continue
		}
		pinged = false
		bo.Reset()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || m.Channel != c.channel {
				continue // the broadcasts channel's confirmation follows its own
			}
			subscriptions++
			if subscriptions == 1 {
				close(subscribed)
			}
			if subscriptions > 1 {
				c.log.Info("subscription re-established; re-announcing presence", "channel", c.channel)
				c.requestResync()
			}
		case *redis.Message:
			c.handle(ctx, l, m.Payload)
		}
	}
}

// newPubSub replaces the current subscription (closing the old one) with a
// new one on this gateway's channel and the broadcasts channel, or
// returns nil once ctx is done. The
// SUBSCRIBE is sent outside psMu; if it fails, go-redis sends it again
// when the loop next receives.
func (c *Cluster) newPubSub(ctx context.Context) *redis.PubSub {
	c.psMu.Lock()
	if ctx.Err() != nil {
		c.psMu.Unlock()
		return nil
	}
	if c.ps != nil {
		_ = c.ps.Close()
	}
	ps := c.rdb.Subscribe(ctx) // no channel yet: no I/O
	c.ps = ps
	c.psMu.Unlock()
	if err := ps.Subscribe(ctx, c.channel, c.bcChannel); err != nil && ctx.Err() == nil {
		c.redisFailed("subscribe", err)
	}
	return ps
}

// closePubSub closes the current subscription, which ends a blocked
// receive. Run calls it after cancelling the loop's context, so the loop
// cannot install a new one afterwards.
func (c *Cluster) closePubSub() {
	c.psMu.Lock()
	defer c.psMu.Unlock()
	if c.ps != nil {
		_ = c.ps.Close()
		c.ps = nil
	}
}

// handle delivers one message from another gateway.
func (c *Cluster) handle(ctx context.Context, l Local, payload string) {
	m, err := decodeMessage([]byte(payload))
	if err != nil {
		c.m.receivedInvalid.Inc()
		if n, ok := c.messageLog.Allow(); ok {
			c.log.Warn("ignoring an invalid message", "channel", c.channel, "err", err, "suppressed", n)
		}
		return
	}
	switch m.Kind {
	case kindNotification:
		c.m.receivedNotifications.Inc()
		if _, err := l.Deliver(ctx, m.UserID, m.Notification); err != nil {
			c.log.Warn("cannot deliver a routed notification", "user", m.UserID, "seq", m.Notification.Seq, "err", err)
		}
	case kindUnread:
		c.m.receivedUnread.Inc()
		l.PublishUnread(ctx, m.UserID, m.Unread)
	case kindMembership:
		c.m.receivedMemberships.Inc()
		if lm := membershipsOf(l); lm != nil {
			lm.MembershipChanged(ctx, m.UserID, m.Topic, m.Subscribed)
		}
	case kindPreferences:
		c.m.receivedPreferences.Inc()
		if lb := broadcastsOf(l); lb != nil {
			lb.PreferencesChanged(ctx, m.UserID, m.Preferences)
		}
	case kindBroadcast:
		c.m.receivedBroadcasts.Inc()
		if lb := broadcastsOf(l); lb != nil {
			if _, err := lb.Broadcast(ctx, m.Broadcast); err != nil {
				c.log.Warn("cannot frame a live broadcast", "event", m.Broadcast.EventID, "topic", m.Broadcast.Topic, "err", err)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
