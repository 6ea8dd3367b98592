package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
)

// Bounds of POST /v1/audiences/{topic}/members.
const (
	// MaxMembersPerCall bounds add and remove together.
	MaxMembersPerCall = 10_000
	// maxMembersBody bounds its body: 10,000 ids of 128 bytes quoted and
	// separated are about 1.3 MB, more than maxBody, so the route has a
	// limit of its own. Like POST /v1/events, the bytes are charged to the
	// intake budget (Config.MaxInflightBytes) while the request runs.
	maxMembersBody = 2 << 20
	// membersParallel bounds the store calls one members request makes
	// at once: the Subscriptions interface has no batch call, and 10,000
	// sequential round trips would outlast the write timeout.
	membersParallel = 16
)

// subscriptionJSON is one subscription as the API shows it.
type subscriptionJSON struct {
	Topic        string    `json:"topic"`
	SubscribedAt time.Time `json:"subscribed_at"`
}

// pathTopic returns the {topic} path value, or answers 400 naming "topic".
func pathTopic(w http.ResponseWriter, r *http.Request) (string, bool) {
	topic := r.PathValue("topic")
	if err := herald.ValidateTopic(topic); err != nil {
		writeError(w, http.StatusBadRequest, "topic", err.Error())
		return "", false
	}
	return topic, true
}

// subscriptionError answers a Subscriptions failure: a validation error
// (the user's 1001st topic) is a 400 naming its field, the rest as
// storeError.
func (s *Server) subscriptionError(w http.ResponseWriter, op string, err error) {
	if ve, ok := herald.AsValidationError(err); ok {
		writeError(w, http.StatusBadRequest, ve.Field, ve.Error())
		return
	}
	s.storeError(w, op, err)
}

// putSubscription subscribes the user to {topic}: 201 with the new
// subscription, 200 with the stored one (its first subscribed_at) when the
// user was subscribed already.
func (s *Server) putSubscription(w http.ResponseWriter, r *http.Request, uid string) {
	topic, ok := pathTopic(w, r)
	if !ok {
		return
	}
	// A concurrent DELETE may remove the subscription between Subscribe
	// and reading it back: try again, a few times.
	head := s.feedHead(r.Context(), topic) // read before subscribing: see feeds.go
	for range 3 {
		at := s.cfg.Now().UTC().Truncate(time.Microsecond)
		created, err := s.cfg.Store.Subscribe(r.Context(), uid, topic, at)
		if err != nil {
			s.subscriptionError(w, "subscribe", err)
			return
		}
		if created {
			s.subscribed(r.Context(), uid, topic, head)
			writeJSON(w, http.StatusCreated, subscriptionJSON{Topic: topic, SubscribedAt: at})
			return
		}
		subs, err := s.cfg.Store.Topics(r.Context(), uid)
		if err != nil {
			s.storeError(w, "topics", err)
			return
		}
		for _, sub := range subs {
			if sub.Topic == topic {
				writeJSON(w, http.StatusOK, subscriptionJSON{Topic: topic, SubscribedAt: sub.SubscribedAt.UTC()})
				return
			}
		}
	}
	retryAfter(w, time.Second)
	writeError(w, http.StatusServiceUnavailable, "", "the subscription changed concurrently, retry")
}

// deleteSubscription unsubscribes the user from {topic}: 204, or 404 when
// the user was not subscribed.
func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, uid string) {
	topic, ok := pathTopic(w, r)
	if !ok {
		return
	}
	removed, err := s.cfg.Store.Unsubscribe(r.Context(), uid, topic)
	if err != nil {
		s.subscriptionError(w, "unsubscribe", err)
		return
	}
	if !removed {
		writeError(w, http.StatusNotFound, "", "not subscribed to "+topic)
		return
	}
	s.unsubscribed(r.Context(), uid, topic)
	w.WriteHeader(http.StatusNoContent)
}

// listSubscriptions answers the user's subscriptions, ascending by topic
// (at most store.MaxTopicsPerUser, so never paged).
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, uid string) {
	subs, err := s.cfg.Store.Topics(r.Context(), uid)
	if err != nil {
		s.storeError(w, "topics", err)
		return
	}
	out := make([]subscriptionJSON, len(subs))
	for i, sub := range subs {
		out[i] = subscriptionJSON{Topic: sub.Topic, SubscribedAt: sub.SubscribedAt.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

// service authenticates an upstream service by its API key, as POST
// /v1/events does, and hands h the key (rate limits are per key).
func (s *Server) service(h func(w http.ResponseWriter, r *http.Request, key string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := auth.AuthorizationBearer(r)
		if key == "" {
			unauthorized(w, false, "missing API key: send Authorization: Bearer <key>")
			return
		}
		if s.cfg.Keys == nil || !s.cfg.Keys.Valid(key) {
			unauthorized(w, true, "invalid API key")
			return
		}
		h(w, r, key)
	}
}

// charge takes n tokens from key's bucket (Config.EventsPerKey, shared
// with POST /v1/events), answering 400 naming field when n can never pass
// and 429 when it passes later.
func (s *Server) charge(w http.ResponseWriter, key, field string, n int) bool {
	switch v, wait := s.keys.allow(key, n, s.cfg.Now()); v {
	case never:
		l := s.cfg.EventsPerKey
		writeError(w, http.StatusBadRequest, field, fmt.Sprintf(
			"%d user ids can never pass this API key's rate limit (%g per second, bursts of %d): send at most %d per request",
			n, l.Rate, l.Burst, l.Burst))
		return false
	case later:
		tooMany(w, wait)
		return false
	}
	return true
}

// membersRequest is the body of POST /v1/audiences/{topic}/members. The
// ids stay raw so that a wrong element is named ("add[7]").
type membersRequest struct {
	Add    []json.RawMessage `json:"add"`
	Remove []json.RawMessage `json:"remove"`
}

// member is one distinct user id of add or remove and its index there
// (its first occurrence), for errors.
type member struct {
	id string
	at int
}

// userIDs validates the elements of field, dropping repeats.
func userIDs(field string, raws []json.RawMessage) ([]member, *herald.ValidationError) {
	ids := make([]member, 0, len(raws))
	seen := make(map[string]struct{}, len(raws))
	for i, raw := range raws {
		f := field + "[" + strconv.Itoa(i) + "]"
		var id string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &id) != nil {
			return nil, &herald.ValidationError{Field: f, Reason: "must be a user id (a string), got " + string(raw)}
		}
		if err := herald.ValidateUserID(id); err != nil {
			ve, _ := herald.AsValidationError(err)
			return nil, &herald.ValidationError{Field: f, Reason: ve.Reason}
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, member{id: id, at: i})
		}
	}
	return ids, nil
}

// validate checks the request and returns its distinct ids.
func (m *membersRequest) validate() (add, remove []member, err *herald.ValidationError) {
	n := len(m.Add) + len(m.Remove)
	switch {
	case n == 0:
		return nil, nil, &herald.ValidationError{Field: "add", Reason: "at least one user id in add or remove is required"}
	case n > MaxMembersPerCall:
		field := "remove"
		if len(m.Add) > MaxMembersPerCall {
			field = "add"
		}
		return nil, nil, &herald.ValidationError{Field: field, Reason: fmt.Sprintf(
			"add and remove have %d user ids together, more than the %d allowed in one request", n, MaxMembersPerCall)}
	}
	if add, err = userIDs("add", m.Add); err != nil {
		return nil, nil, err
	}
	if remove, err = userIDs("remove", m.Remove); err != nil {
		return nil, nil, err
	}
	inAdd := make(map[string]struct{}, len(add))
	for _, a := range add {
		inAdd[a.id] = struct{}{}
	}
	for _, r := range remove {
		if _, both := inAdd[r.id]; both {
			return nil, nil, &herald.ValidationError{Field: "remove[" + strconv.Itoa(r.at) + "]",
				Reason: fmt.Sprintf("user id %q is in add too: a user is either added or removed", r.id)}
		}
	}
	return add, remove, nil
}

// postMembers adds and removes members of {topic}: 200 with how many
// memberships were created and removed (a repeat call answers 0 and 0).
// Validation is all or nothing; the store calls are not: on a failure
// part way (503, or 400 for a user at store.MaxTopicsPerUser) some may
// have been applied, and the call, being idempotent, may be retried.
func (s *Server) postMembers(w http.ResponseWriter, r *http.Request, key string) {
	topic, ok := pathTopic(w, r)
	if !ok {
		return
	}
	body, release, err := s.readBudgeted(w, r, maxMembersBody)
	defer release()
	if err != nil {
		if errors.As(err, new(errBusy)) {
			retryAfter(w, time.Second)
			writeError(w, http.StatusServiceUnavailable, "", "intake is busy (in-flight bytes at their bound), retry")
			return
		}
		bodyError(w, err)
		return
	}
	var req membersRequest
	if err := decodeStrict(body, &req); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, ve.Field, ve.Error())
		return
	}
	add, remove, ve := req.validate()
	if ve != nil {
		writeError(w, http.StatusBadRequest, ve.Field, ve.Error())
		return
	}
	field := "add"
	if len(add) == 0 {
		field = "remove"
	}
	if !s.charge(w, key, field, len(add)+len(remove)) {
		return
	}
	at := s.cfg.Now().UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.MembersTimeout)
	defer cancel()
	added, removed, err := s.applyMembers(ctx, topic, add, remove, at)
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		retryAfter(w, time.Second)
		writeError(w, http.StatusServiceUnavailable, "", fmt.Sprintf(
			"the store is slow: %d added and %d removed in %v, the rest not applied; the call is idempotent, retry it (or send fewer ids per call)",
			added, removed, s.cfg.MembersTimeout))
		return
	}
	if err != nil {
		if ve, ok := herald.AsValidationError(err); ok {
			writeError(w, http.StatusBadRequest, ve.Field, ve.Error()+
				" (the other changes of this request may have been applied; it is idempotent, so retry without this id)")
			return
		}
		s.storeError(w, "members", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"added": added, "removed": removed})
}

// applyMembers subscribes add and unsubscribes remove, membersParallel
// store calls at a time, and counts the changes. It stops at the first
// error; a validation error is renamed to the element ("add[3]").
func (s *Server) applyMembers(ctx context.Context, topic string, add, remove []member, at time.Time) (added, removed int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, membersParallel)
	)
	fail := func(e error) {
		mu.Lock()
		if first == nil {
			first = e
			cancel()
		}
		mu.Unlock()
	}
	run := func(field string, ids []member, op func(id string) (bool, error), n *int) {
		for _, m := range ids {
			if ctx.Err() != nil {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				changed, err := op(m.id)
				if err != nil {
					if ve, ok := herald.AsValidationError(err); ok {
						err = &herald.ValidationError{Field: field + "[" + strconv.Itoa(m.at) + "]", Reason: ve.Reason}
					}
					fail(err)
					return
				}
				if changed {
					mu.Lock()
					*n++
					mu.Unlock()
				}
			})
		}
	}
	head := s.feedHead(ctx, topic) // read before subscribing: see feeds.go
	run("add", add, func(id string) (bool, error) {
		created, err := s.cfg.Store.Subscribe(ctx, id, topic, at)
		if created {
			s.subscribed(ctx, id, topic, head)
		}
		return created, err
	}, &added)
	run("remove", remove, func(id string) (bool, error) {
		removed, err := s.cfg.Store.Unsubscribe(ctx, id, topic)
		if removed {
			s.unsubscribed(ctx, id, topic)
		}
		return removed, err
	}, &removed)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return added, removed, first
}

// getAudience answers the member count of {topic} (0 for a topic nobody
// subscribed to: a topic exists by its members).
func (s *Server) getAudience(w http.ResponseWriter, r *http.Request, key string) {
	topic, ok := pathTopic(w, r)
	if !ok {
		return
	}
	if !s.charge(w, key, "", 1) {
		return
	}
	n, err := s.cfg.Store.MemberCount(r.Context(), topic)
	if err != nil {
		s.storeError(w, "member_count", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "members": n})
}
