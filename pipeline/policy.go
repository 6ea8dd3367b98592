package pipeline

import (
	"context"
	"fmt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store"
)

// The policy stage (digests, rate limits, daily caps: package policy)
// runs between routing and the claim, inside the batch's transaction. For
// each user of the batch with a governed event or a tick it
//
//  1. reads the user's policy state (one point read) and prunes the
//     decisions of records that are committed: every record of the user's
//     partition before the batch's first one;
//  2. decides each governed event and tick in record order: a record
//     whose offset already has a decision (a replay: the batch, or a
//     zombie's, was aborted after the state was written) gets that
//     decision again, whatever the state became since; a new event is
//     first looked up among the user's recent governed event ids (an
//     upstream duplicate is dropped before it counts anywhere: see
//     policy/seen.go for why not a claim in the store), then decided by
//     policy.Apply, a tick by policy.Tick, and the decision is recorded;
//  3. writes the state back through the partition's fenced Writer,
//     together with the due entries of the windows it holds, before
//     anything of the batch is produced;
//  4. turns each decision into the entries of the later stages: held,
//     dropped and capped events leave the batch; every digest a record
//     closed becomes a notification entry placed right before that record,
//     stored, delivered and pushed like any other (its id derives from the
//     closing record, so a replay stores and produces the same one).
//
// Exactly once follows from the transaction: the state may run ahead of
// the committed offsets (a crash after step 3), never behind, and the
// records it ran ahead with are replayed with their recorded decisions.

// policyAction is one count of herald_policy_total.
type policyAction struct{ typ, action string }

// The actions of herald_policy_total.
const (
	actDigested = "digested" // folded into a digest window
	actThrottle = "throttled"
	actDropped  = "dropped" // throttled with excess: drop
	actCapped   = "capped"
	actOverflow = "overflow"
	actEmitted  = "emitted" // a digest notification went out
)

// policy applies the policy in force to the batch (see above).
func (b *batch) policy(ctx context.Context) error {
	pol := b.e.policy()
	var users []*userBatch
	for _, u := range b.users {
		if u.failed == nil && b.governed(pol, u) {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	first := map[string]int64{}
	for _, r := range b.recs {
		sc := scopeOf(r)
		if o, ok := first[sc]; !ok || r.Offset < o {
			first[sc] = r.Offset
		}
	}
	err := b.perUser(ctx, users, func(ctx context.Context, u *userBatch) error {
		return b.applyPolicy(ctx, pol, u, first)
	})
	if err != nil {
		return err
	}
	b.spliceDigests()
	return nil
}

// governed reports whether u has a tick or an event the policy governs.
func (b *batch) governed(pol *policy.Policy, u *userBatch) bool {
	for _, en := range u.entries {
		if en.tick != nil || (en.kept && pol.Governs(&en.ev)) {
			return true
		}
	}
	return false
}

// decided is a decision of applyPolicy, applied to its entry once the
// state is written.
type decided struct {
	en  *entry
	out policy.Outcome
	dup bool
}

// applyPolicy runs steps 1 to 4 for one user.
func (b *batch) applyPolicy(ctx context.Context, pol *policy.Policy, u *userBatch, first map[string]int64) error {
	raw, err := b.e.cfg.Store.PolicyState(ctx, u.id)
	if err != nil {
		return fmt.Errorf("policy state of %s: %w", u.id, err)
	}
	st, err := policy.Decode(raw)
	if err != nil {
		// Keeping the user's events out of the inbox for good would be
		// worse than forgetting the windows and counters.
		b.e.log.Error("unreadable policy state: starting the user from an empty one", "user", u.id, "err", err)
		b.e.m.policyReset.Inc()
		st, _ = policy.Decode(nil)
		// Window numbers must not be handed out again: digest event ids
		// already in the inbox would take new digests for duplicates.
		st.NextWindow = uint64(b.now.UnixMicro())
	}
	loc := u.prefs.Location()
	scope := ""
	changed := false
	var ds []decided
	for _, en := range u.entries {
		if en.tick == nil && (!en.kept || !pol.Governs(&en.ev)) {
			continue
		}
		if scope == "" {
			scope = scopeOf(en.rec)
			st.Prune(first[scope])
		}
		if out, ok := st.Decided(en.rec.Offset); ok {
			ds = append(ds, decided{en: en, out: out})
			continue
		}
		var out policy.Outcome
		if en.tick != nil {
			out = pol.Tick(st, en.tick.Key, en.tick.DueAt, b.now, loc)
		} else {
			if st.Seen(en.ev.ID) {
				// An upstream duplicate (policy/seen.go): another
				// record with this id was governed already.
				ds = append(ds, decided{en: en, dup: true})
				continue
			}
			st.See(en.ev.ID)
			out = pol.Apply(st, &en.ev, b.now, loc)
		}
		st.Record(en.rec.Offset, out)
		changed = true
		ds = append(ds, decided{en: en, out: out})
	}
	if changed {
		if err := b.putPolicy(ctx, scope, u.id, st); err != nil {
			return err
		}
	}
	for _, d := range ds {
		b.applyDecision(u, d)
	}
	return nil
}

// putPolicy writes st, with a due entry for every window it holds (the
// store keeps one of each: a window's entry is written again by every
// later put, which heals one lost to a crash between the two writes).
func (b *batch) putPolicy(ctx context.Context, scope, userID string, st *policy.State) error {
	var enc []byte
	if !st.Empty() {
		var err error
		if enc, err = st.Encode(); err != nil {
			return errclass.Permanent(fmt.Errorf("policy state of %s: %w", userID, err))
		}
	}
	wins := st.Due()
	due := make([]store.PolicyDue, len(wins))
	for i, w := range wins {
		due[i] = store.PolicyDue{At: w.At, UserID: userID, Key: w.Key}
	}
	w, err := b.e.writers.get(ctx, scope)
	if err != nil {
		return err
	}
	if err := w.PutPolicy(ctx, userID, enc, due); err != nil {
		return fmt.Errorf("put policy state of %s: %w", userID, err)
	}
	return nil
}

// applyDecision turns one decision into what the later stages see. It
// runs in the user's goroutine and touches only the user's entries.
func (b *batch) applyDecision(u *userBatch, d decided) {
	en := d.en
	if d.dup {
		en.kept, en.dup = false, true
		return
	}
	typ := en.ev.Type
	count := func(action string) {
		en.policy = append(en.policy, policyAction{typ: typ, action: action})
	}
	if d.out.Throttled {
		count(actThrottle)
	}
	switch d.out.Action {
	case policy.Deliver:
	case policy.Overflow:
		count(actOverflow)
	case policy.Fold:
		en.kept = false
		count(actDigested)
	case policy.Drop:
		en.kept = false
		count(actDropped)
	case policy.Capped:
		en.kept = false
		count(actCapped)
	case policy.Ignore, policy.Emit:
		// A tick: only what it closed goes on.
	}
	for _, c := range d.out.Closed {
		typ := c.Event.Type
		if c.Capped {
			en.policy = append(en.policy, policyAction{typ: typ, action: actCapped})
			continue
		}
		dg := &entry{rec: en.rec, ev: c.Event, user: u, digest: true}
		b.routeEntry(dg)
		en.before = append(en.before, dg)
	}
}

// spliceDigests places the digest entries of applyDecision right before
// the records that closed them, in the batch's and in their user's
// entries.
func (b *batch) spliceDigests() {
	splice := func(ens []*entry) []*entry {
		n := 0
		for _, en := range ens {
			n += len(en.before)
		}
		if n == 0 {
			return ens
		}
		out := make([]*entry, 0, len(ens)+n)
		for _, en := range ens {
			out = append(out, en.before...)
			out = append(out, en)
		}
		return out
	}
	b.entries = splice(b.entries)
	for _, u := range b.users {
		u.entries = splice(u.entries)
	}
}

// token identifies en's notification for Claim and derives its id: the
// source record's, and for a digest the source record's plus the digest's
// event id (a record may close several windows).
func (en *entry) token() string {
	if en.digest {
		return sourceToken(en.rec) + "#" + en.ev.ID
	}
	return sourceToken(en.rec)
}

// countPolicy adds en's policy actions to the batch's stats.
func (st *batchStats) countPolicy(en *entry) {
	if len(en.policy) == 0 {
		return
	}
	if st.policy == nil {
		st.policy = map[policyAction]int{}
	}
	for _, a := range en.policy {
		st.policy[a]++
	}
}

// emitted counts a digest notification that went out.
func (st *batchStats) emitted(ev *herald.Event) {
	if st.policy == nil {
		st.policy = map[policyAction]int{}
	}
	st.policy[policyAction{typ: ev.Type, action: actEmitted}]++
}
