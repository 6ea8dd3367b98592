package api

import (
	"context"
	"time"

	herald "github.com/heraldhq/herald"
)

// The API's part in the large-audience path (pipeline/fanout_feed.go): a
// broadcast to a large audience is written once, to the topic's feed, and
// each member's inbox takes it when the member next reads or connects.
//
//   - GET /v1/notifications asks CatchUp to bring the user's feeds into the
//     inbox: the request returns what is stored now, and the broadcasts the
//     user had not taken yet follow within about a second, live on their
//     open connections and in their next read.
//   - A new subscription starts at the feed's head, so a new member never
//     scans the topic's earlier broadcasts (those after the head and
//     created before the subscription are filtered by subscribed_at).
//   - Subscription changes are told to the gateways (Memberships), whose
//     record of their connected users' topics is the live path's list of
//     recipients.

// CatchUp brings a user's audience feeds into their inbox
// (pipeline.CatchUpRequester). Request returns once the request is
// durable, or at once when nothing is pending.
type CatchUp interface {
	Request(ctx context.Context, userID string) error
}

// MembershipNotifier is told of subscription changes (delivery.Gateway
// or delivery/cluster.Cluster), so gateways keep their connected users'
// topics current.
type MembershipNotifier interface {
	MembershipChanged(ctx context.Context, userID, topic string, subscribed bool)
}

// PreferencesNotifier is an optional extension of Config.Memberships: if
// it implements it, PreferencesChanged is called after every stored
// PUT /v1/preferences, so that gateways frame live broadcasts by the
// user's current preferences (docs/ARCHITECTURE.md, "Live broadcasts").
// delivery.Gateway and delivery/cluster.Cluster implement it.
type PreferencesNotifier interface {
	PreferencesChanged(ctx context.Context, userID string, p herald.Preferences)
}

// catchUpTimeout bounds how long a read waits for its catch-up request.
const catchUpTimeout = 500 * time.Millisecond

// catchUp requests uid's catch-up, best effort: a failure is logged (the
// next read asks again) and never fails the read.
func (s *Server) catchUp(ctx context.Context, uid string) {
	if s.cfg.CatchUp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	if err := s.cfg.CatchUp.Request(ctx, uid); err != nil {
		s.m.catchUpFailed.Inc()
		s.log.Debug("cannot request a feed catch-up", "user", uid, "err", err)
	}
}

// feedHead is where a new member of topic starts in its feed; 0 (the
// start) when it cannot be read, which only costs the catch-up a scan.
func (s *Server) feedHead(ctx context.Context, topic string) int64 {
	head, err := s.cfg.Store.FeedHead(ctx, topic)
	if err != nil {
		s.log.Debug("cannot read a feed head", "topic", topic, "err", err)
		return 0
	}
	return head
}

// subscribed records a new membership: the member's cursor at head and
// the gateways told. Best effort, as feedHead.
func (s *Server) subscribed(ctx context.Context, uid, topic string, head int64) {
	if head > 0 {
		if err := s.cfg.Store.SetFeedCursor(ctx, uid, topic, head); err != nil {
			s.log.Debug("cannot start a member's feed cursor", "user", uid, "topic", topic, "err", err)
		}
	}
	if s.cfg.Memberships != nil {
		s.cfg.Memberships.MembershipChanged(ctx, uid, topic, true)
	}
}

// unsubscribed tells the gateways.
func (s *Server) unsubscribed(ctx context.Context, uid, topic string) {
	if s.cfg.Memberships != nil {
		s.cfg.Memberships.MembershipChanged(ctx, uid, topic, false)
	}
}
