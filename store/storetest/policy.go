package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/store"
)

// policyBase is the first due time of a policy test: a whole second a day
// after now, so no entry is old enough for a store to drop it under
// store.PolicyDueRetention, whenever the suite runs (a fixed date would
// fall out of the retention as time passes).
func policyBase() time.Time {
	return time.Now().UTC().Truncate(time.Second).Add(24 * time.Hour)
}

func mustPolicyState(t *testing.T, ctx context.Context, st store.Store, userID string) []byte {
	t.Helper()
	b, err := st.PolicyState(ctx, userID)
	if err != nil {
		t.Fatalf("PolicyState(%s): %v", userID, err)
	}
	return b
}

func mustPutPolicy(t *testing.T, ctx context.Context, w store.Writer, userID string, state []byte, due ...store.PolicyDue) {
	t.Helper()
	if err := w.PutPolicy(ctx, userID, state, due); err != nil {
		t.Fatalf("PutPolicy(%s, %d bytes, %d due): %v", userID, len(state), len(due), err)
	}
}

func mustPolicyDue(t *testing.T, ctx context.Context, st store.Store, scope string, after store.PolicyDue, until time.Time, limit int) []store.PolicyDue {
	t.Helper()
	l, err := st.PolicyDue(ctx, scope, after, until, limit)
	if err != nil {
		t.Fatalf("PolicyDue(%s, after %v, until %v, %d): %v", scope, fmtDue(after), until, limit, err)
	}
	if len(l) > limit {
		t.Fatalf("PolicyDue(limit %d) returned %d entries", limit, len(l))
	}
	return l
}

// allDue is the scope's whole due index (up to 10,000 entries).
func allDue(t *testing.T, ctx context.Context, st store.Store, scope string) []store.PolicyDue {
	t.Helper()
	return mustPolicyDue(t, ctx, st, scope, store.PolicyDue{}, farFuture, 10_000)
}

// farFuture is after every due time of the tests.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func mustPolicyCursor(t *testing.T, ctx context.Context, st store.Store, scope string) store.PolicyDue {
	t.Helper()
	c, err := st.PolicyCursor(ctx, scope)
	if err != nil {
		t.Fatalf("PolicyCursor(%s): %v", scope, err)
	}
	return c
}

func mustSetCursor(t *testing.T, ctx context.Context, w store.Writer, cur store.PolicyDue) {
	t.Helper()
	if err := w.SetPolicyCursor(ctx, cur); err != nil {
		t.Fatalf("SetPolicyCursor(%s): %v", fmtDue(cur), err)
	}
}

func fmtDue(d store.PolicyDue) string {
	return fmt.Sprintf("(%s, %s, %q)", d.At.Format(time.RFC3339Nano), d.UserID, d.Key)
}

func fmtDues(l []store.PolicyDue) string {
	parts := make([]string, len(l))
	for i, d := range l {
		parts[i] = fmtDue(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// sameDue compares entries as a store returns them: equal instants, in UTC.
func sameDue(got, want store.PolicyDue) bool {
	return got.At.Equal(want.At) && got.At.Location() == time.UTC && got.UserID == want.UserID && got.Key == want.Key
}

func wantDue(t *testing.T, what string, got, want []store.PolicyDue) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = sameDue(got[i], want[i])
	}
	if !ok {
		t.Fatalf("%s:\n got  %d %s\n want %d %s", what, len(got), fmtDues(got), len(want), fmtDues(want))
	}
}

func sortedDue(l []store.PolicyDue) []store.PolicyDue {
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b store.PolicyDue) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return 0
	})
	return l
}

// policyStateAbsent: a user never put has no state: nil, nil.
func (s *suite) policyStateAbsent(t *testing.T) {
	st, ctx := s.open(t)
	if b, err := st.PolicyState(ctx, s.user("no-policy")); err != nil || b != nil {
		t.Fatalf("PolicyState(unknown) = %q, %v; want nil, nil", b, err)
	}
}

// policyStateRoundTrip: PutPolicy stores a copy (later changes to the
// caller's slice do not reach it), PolicyState returns a copy, a put
// replaces, and a nil or empty state deletes, per user.
func (s *suite) policyStateRoundTrip(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u, other := s.user("pol"), s.user("pol-other")
	in := []byte("state one \x00\xff binary")
	mustPutPolicy(t, ctx, w, u, in)
	mustPutPolicy(t, ctx, w, other, []byte("other's"))
	want := bytes.Clone(in)
	in[0] = 'X'
	got := mustPolicyState(t, ctx, st, u)
	if !bytes.Equal(got, want) {
		t.Fatalf("PolicyState = %q, want %q (the caller's slice changed after PutPolicy)", got, want)
	}
	got[0] = 'Y'
	if again := mustPolicyState(t, ctx, st, u); !bytes.Equal(again, want) {
		t.Fatalf("PolicyState after changing a returned slice = %q, want %q", again, want)
	}

	mustPutPolicy(t, ctx, w, u, []byte("two"))
	if got := mustPolicyState(t, ctx, st, u); string(got) != "two" {
		t.Fatalf("PolicyState after replace = %q, want \"two\"", got)
	}
	for _, empty := range [][]byte{nil, {}} {
		mustPutPolicy(t, ctx, w, u, empty)
		if got := mustPolicyState(t, ctx, st, u); got != nil {
			t.Fatalf("PolicyState after PutPolicy(%#v) = %q, want nil", empty, got)
		}
		mustPutPolicy(t, ctx, w, u, []byte("back"))
	}
	if got := mustPolicyState(t, ctx, st, other); string(got) != "other's" {
		t.Fatalf("another user's state = %q", got)
	}
}

// policyStateMax: a state of exactly MaxPolicyStateBytes is stored, one
// byte more is a *herald.ValidationError on "state" that keeps the stored
// state and writes none of the call's due entries.
func (s *suite) policyStateMax(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("pol-max")
	big := bytes.Repeat([]byte{0xa5}, store.MaxPolicyStateBytes)
	big[len(big)-1] = 0x5a
	mustPutPolicy(t, ctx, w, u, big)
	if got := mustPolicyState(t, ctx, st, u); !bytes.Equal(got, big) {
		t.Fatalf("PolicyState of a %d-byte state: %d bytes back, equal=false", len(big), len(got))
	}
	d := store.PolicyDue{At: policyBase(), UserID: u, Key: "k"}
	err := w.PutPolicy(ctx, u, append(bytes.Clone(big), 1), []store.PolicyDue{d})
	wantInvalid(t, "PutPolicy of MaxPolicyStateBytes+1 bytes", err, "state")
	if got := mustPolicyState(t, ctx, st, u); !bytes.Equal(got, big) {
		t.Fatalf("a refused PutPolicy changed the state: %d bytes", len(got))
	}
	if l := allDue(t, ctx, st, w.Scope()); len(l) != 0 {
		t.Fatalf("a refused PutPolicy wrote due entries: %s", fmtDues(l))
	}
}

// policyValidation: bad user ids and due entries are refused with a
// *herald.ValidationError naming the field, and store nothing; a key of
// MaxPolicyKeyBytes is fine; PolicyDue's limit is 1 to 10,000; PolicyDue
// and PolicyCursor validate the scope.
func (s *suite) policyValidation(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("pol-invalid")
	at := policyBase()
	good := store.PolicyDue{At: at, UserID: u, Key: "k"}
	for _, c := range []struct {
		what  string
		user  string
		due   store.PolicyDue
		field string
	}{
		{"empty user id", "", good, "user_id"},
		{"1025-byte user id", tooLongUserID, good, "user_id"},
		{"due without user id", u, store.PolicyDue{At: at, Key: "k"}, "due.user_id"},
		{"due with a 1025-byte user id", u, store.PolicyDue{At: at, UserID: tooLongUserID, Key: "k"}, "due.user_id"},
		{"due without key", u, store.PolicyDue{At: at, UserID: u}, "due.key"},
		{"due with a too long key", u, store.PolicyDue{At: at, UserID: u, Key: strings.Repeat("k", store.MaxPolicyKeyBytes+1)}, "due.key"},
	} {
		err := w.PutPolicy(ctx, c.user, []byte("s"), []store.PolicyDue{good, c.due})
		wantInvalid(t, "PutPolicy with "+c.what, err, c.field)
	}
	if got := mustPolicyState(t, ctx, st, u); got != nil {
		t.Fatalf("refused PutPolicy calls stored a state: %q", got)
	}
	if l := allDue(t, ctx, st, w.Scope()); len(l) != 0 {
		t.Fatalf("refused PutPolicy calls wrote due entries: %s", fmtDues(l))
	}

	long := store.PolicyDue{At: at, UserID: u, Key: strings.Repeat("k", store.MaxPolicyKeyBytes)}
	mustPutPolicy(t, ctx, w, u, nil, long)
	wantDue(t, "a key of MaxPolicyKeyBytes", allDue(t, ctx, st, w.Scope()), []store.PolicyDue{long})

	for _, limit := range []int{0, -1, 10_001} {
		_, err := st.PolicyDue(ctx, w.Scope(), store.PolicyDue{}, farFuture, limit)
		wantInvalid(t, fmt.Sprintf("PolicyDue with limit %d", limit), err, "limit")
	}
	for _, scope := range []string{"", strings.Repeat("s", store.MaxScopeBytes+1)} {
		_, err := st.PolicyDue(ctx, scope, store.PolicyDue{}, farFuture, 10)
		wantInvalid(t, fmt.Sprintf("PolicyDue of a %d-byte scope", len(scope)), err, "scope")
		_, err = st.PolicyCursor(ctx, scope)
		wantInvalid(t, fmt.Sprintf("PolicyCursor of a %d-byte scope", len(scope)), err, "scope")
	}
}

// policyDueOrder: entries written out of order, over several calls and
// users, come back ordered by (At, UserID, Key); after is strict, until is
// inclusive, limit caps the result.
func (s *suite) policyDueOrder(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	scope := w.Scope()
	base := policyBase()
	ua, ub := s.user("due-a"), s.user("due-b")
	var all []store.PolicyDue
	add := func(u string, state string, ds ...store.PolicyDue) {
		mustPutPolicy(t, ctx, w, u, []byte(state), ds...)
		all = append(all, ds...)
	}
	add(ub,
		"b1",
		store.PolicyDue{At: base.Add(2 * time.Second), UserID: ub, Key: "like\x1fpost-1"},
		store.PolicyDue{At: base, UserID: ub, Key: "z"},
		store.PolicyDue{At: base.Add(time.Second), UserID: ub, Key: "a"},
	)
	add(ua,
		"a1",
		store.PolicyDue{At: base.Add(time.Second), UserID: ua, Key: "b"},
		store.PolicyDue{At: base.Add(time.Second), UserID: ua, Key: "a"},
		store.PolicyDue{At: base.Add(time.Second), UserID: ua, Key: "a\x00"},
		store.PolicyDue{At: base.Add(time.Millisecond), UserID: ua, Key: "x"},
		store.PolicyDue{At: base.Add(time.Hour), UserID: ua, Key: "late"},
	)
	// Due entries of another user, written through a call for ua: the
	// store does not tie them to the state's user.
	add(ua, "a2", store.PolicyDue{At: base.Add(time.Second), UserID: ub, Key: "0"})
	want := sortedDue(all)

	wantDue(t, "the whole index", allDue(t, ctx, st, scope), want)
	for i := range want {
		got := mustPolicyDue(t, ctx, st, scope, want[i], farFuture, 10_000)
		wantDue(t, "after entry "+fmtDue(want[i]), got, want[i+1:])
	}
	// An after that is no entry: the entries following it.
	between := store.PolicyDue{At: base.Add(time.Second), UserID: ua, Key: "a\x00\x00"}
	i := slices.IndexFunc(want, between.Less)
	wantDue(t, "after a key between entries", mustPolicyDue(t, ctx, st, scope, between, farFuture, 10_000), want[i:])

	// until is inclusive.
	until := base.Add(time.Second)
	n := 0
	for n < len(want) && !want[n].At.After(until) {
		n++
	}
	wantDue(t, "until the At of entries", mustPolicyDue(t, ctx, st, scope, store.PolicyDue{}, until, 10_000), want[:n])
	wantDue(t, "until just before the first", mustPolicyDue(t, ctx, st, scope, store.PolicyDue{}, base.Add(-time.Microsecond), 10_000), nil)
	wantDue(t, "until the first", mustPolicyDue(t, ctx, st, scope, store.PolicyDue{}, base, 10_000), want[:1])

	for limit := 1; limit <= 3; limit++ {
		wantDue(t, fmt.Sprintf("limit %d", limit), mustPolicyDue(t, ctx, st, scope, store.PolicyDue{}, farFuture, limit), want[:limit])
		wantDue(t, fmt.Sprintf("limit %d after the first", limit), mustPolicyDue(t, ctx, st, scope, want[0], farFuture, limit), want[1:1+limit])
	}
	if got := mustPolicyDue(t, ctx, st, scope, want[len(want)-1], farFuture, 10); len(got) != 0 {
		t.Fatalf("after the last entry: %s", fmtDues(got))
	}
}

// policyDuePaging: 2,500 entries (many sharing an At) paged 1,000 at a
// time, each page starting after the previous page's last entry, come back
// each exactly once, in order.
func (s *suite) policyDuePaging(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	base := policyBase()
	const users, perUser = 25, 100
	var all []store.PolicyDue
	for i := range users {
		u := s.user(fmt.Sprintf("page%02d", i))
		ds := make([]store.PolicyDue, perUser)
		for j := range ds {
			// 10 distinct instants per user, shared by all users.
			ds[j] = store.PolicyDue{At: base.Add(time.Duration(j%10) * time.Millisecond), UserID: u, Key: fmt.Sprintf("k%03d", j)}
		}
		mustPutPolicy(t, ctx, w, u, []byte("s"), ds...)
		all = append(all, ds...)
	}
	want := sortedDue(all)
	var got []store.PolicyDue
	after := store.PolicyDue{}
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatalf("paging did not end after %d pages (%d entries)", page, len(got))
		}
		l := mustPolicyDue(t, ctx, st, w.Scope(), after, farFuture, 1000)
		if len(l) == 0 {
			break
		}
		if page < 2 && len(l) != 1000 {
			t.Fatalf("page %d has %d entries, want 1000", page, len(l))
		}
		got = append(got, l...)
		after = l[len(l)-1]
	}
	wantDue(t, "2500 entries paged by 1000", got, want)
}

// policyDueNormalised: At comes back truncated to microseconds and in
// UTC, whatever its zone; an entry added again (in the same call, a later
// one, or in another zone) is kept once; entries put with an empty state
// are kept.
func (s *suite) policyDueNormalised(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("due-norm")
	base := policyBase()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	fine := store.PolicyDue{At: base.Add(1500 * time.Nanosecond).In(zone), UserID: u, Key: "fine"}
	plain := store.PolicyDue{At: base.Add(time.Second), UserID: u, Key: "plain"}
	mustPutPolicy(t, ctx, w, u, nil, fine, plain, plain)
	if got := mustPolicyState(t, ctx, st, u); got != nil {
		t.Fatalf("state after PutPolicy with a nil state = %q", got)
	}
	mustPutPolicy(t, ctx, w, u, []byte("s"), plain, store.PolicyDue{At: plain.At.In(zone), UserID: u, Key: "plain"})
	mustPutPolicy(t, ctx, w, u, []byte{}, fine)
	want := []store.PolicyDue{
		{At: base.Add(time.Microsecond), UserID: u, Key: "fine"},
		plain,
	}
	got := allDue(t, ctx, st, w.Scope())
	wantDue(t, "normalised and deduplicated", got, want)
	for _, d := range got {
		if d.At.Nanosecond()%1000 != 0 || d.At.Location() != time.UTC {
			t.Fatalf("At %v is not in UTC microseconds", d.At)
		}
	}
	// The returned entry works as after: nothing of the same instant returns.
	wantDue(t, "after the truncated entry", mustPolicyDue(t, ctx, st, w.Scope(), got[0], farFuture, 10), want[1:])
}

// policyScopes: due indexes and cursors are per scope.
func (s *suite) policyScopes(t *testing.T) {
	st, ctx := s.open(t)
	sa, sb := s.scope("pol-a"), s.scope("pol-b")
	wa, wb := mustFence(t, ctx, st, sa), mustFence(t, ctx, st, sb)
	ua, ub := s.user("scope-pa"), s.user("scope-pb")
	base := policyBase()
	da := store.PolicyDue{At: base, UserID: ua, Key: "k"}
	db := store.PolicyDue{At: base.Add(time.Second), UserID: ub, Key: "k"}
	mustPutPolicy(t, ctx, wa, ua, []byte("a"), da)
	mustPutPolicy(t, ctx, wb, ub, []byte("b"), db)
	wantDue(t, "scope A", allDue(t, ctx, st, sa), []store.PolicyDue{da})
	wantDue(t, "scope B", allDue(t, ctx, st, sb), []store.PolicyDue{db})
	wantDue(t, "a scope never written", allDue(t, ctx, st, s.scope("pol-none")), nil)
	mustSetCursor(t, ctx, wa, da)
	if c := mustPolicyCursor(t, ctx, st, sb); !c.At.IsZero() || c.UserID != "" || c.Key != "" {
		t.Fatalf("scope B's cursor after setting A's = %s, want zero", fmtDue(c))
	}
	wantDue(t, "scope B after A's cursor", allDue(t, ctx, st, sb), []store.PolicyDue{db})
}

// policyCursor: the cursor starts zero, moves forward only, and a scan
// starting at it returns only what follows it (a store may drop the
// entries at or before it: not asserted).
func (s *suite) policyCursor(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	scope := w.Scope()
	if c := mustPolicyCursor(t, ctx, st, scope); !c.At.IsZero() || c.UserID != "" || c.Key != "" {
		t.Fatalf("cursor of a fresh scope = %s, want the zero PolicyDue", fmtDue(c))
	}
	u := s.user("cursor")
	base := policyBase()
	var ds []store.PolicyDue
	for i := range 5 {
		ds = append(ds, store.PolicyDue{At: base.Add(time.Duration(i) * time.Second), UserID: u, Key: "k"})
	}
	mustPutPolicy(t, ctx, w, u, []byte("s"), ds...)

	wantCursor := func(what string, want store.PolicyDue) {
		t.Helper()
		if c := mustPolicyCursor(t, ctx, st, scope); !sameDue(c, want) {
			t.Fatalf("%s: cursor %s, want %s", what, fmtDue(c), fmtDue(want))
		}
	}
	mustSetCursor(t, ctx, w, ds[2])
	wantCursor("after SetPolicyCursor", ds[2])
	mustSetCursor(t, ctx, w, ds[1])
	wantCursor("after an earlier cursor", ds[2])
	mustSetCursor(t, ctx, w, ds[2])
	wantCursor("after the same cursor", ds[2])
	mustSetCursor(t, ctx, w, store.PolicyDue{})
	wantCursor("after the zero cursor", ds[2])

	c := mustPolicyCursor(t, ctx, st, scope)
	wantDue(t, "scan from the cursor", mustPolicyDue(t, ctx, st, scope, c, farFuture, 10), ds[3:])
	// An entry added at or before the cursor (a late PutPolicy) is not
	// returned from the cursor either.
	mustPutPolicy(t, ctx, w, u, []byte("s"), ds[0], store.PolicyDue{At: ds[2].At, UserID: u, Key: "a"})
	wantDue(t, "scan from the cursor after late entries", mustPolicyDue(t, ctx, st, scope, c, farFuture, 10), ds[3:])

	// A cursor between entries, with a zone and sub-microseconds.
	mid := store.PolicyDue{At: ds[3].At.Add(1500 * time.Nanosecond).In(time.FixedZone("W", -3600)), UserID: u, Key: "k"}
	mustSetCursor(t, ctx, w, mid)
	wantCursor("a cursor between entries", store.PolicyDue{At: ds[3].At.Add(time.Microsecond), UserID: u, Key: "k"})
	c = mustPolicyCursor(t, ctx, st, scope)
	wantDue(t, "scan from a cursor between entries", mustPolicyDue(t, ctx, st, scope, c, farFuture, 10), ds[4:])
}

// policyFenced: a Writer fenced by a later Fence of its scope gets
// ErrFenced from PutPolicy and SetPolicyCursor and changes nothing; a
// Fence of another scope does not affect it.
func (s *suite) policyFenced(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("pol-zombie")
	old := mustFence(t, ctx, st, scope)
	u, fresh := s.user("pol-fenced"), s.user("pol-fenced-fresh")
	base := policyBase()
	d1 := store.PolicyDue{At: base, UserID: u, Key: "k1"}
	d2 := store.PolicyDue{At: base.Add(time.Second), UserID: u, Key: "k2"}
	mustPutPolicy(t, ctx, old, u, []byte("v1"), d1, d2)
	mustSetCursor(t, ctx, old, d1)

	mustFence(t, ctx, st, s.scope("pol-other")) // another scope: old still works
	mustPutPolicy(t, ctx, old, u, []byte("v2"))
	mustSetCursor(t, ctx, old, store.PolicyDue{At: d1.At, UserID: u, Key: "k1\x00"})
	cursor := mustPolicyCursor(t, ctx, st, scope)
	due := mustPolicyDue(t, ctx, st, scope, cursor, farFuture, 100)

	cur := mustFence(t, ctx, st, scope)
	for what, err := range map[string]error{
		"PutPolicy":                 old.PutPolicy(ctx, u, []byte("zombie"), []store.PolicyDue{{At: base.Add(time.Hour), UserID: u, Key: "z"}}),
		"PutPolicy deleting":        old.PutPolicy(ctx, u, nil, nil),
		"PutPolicy of another user": old.PutPolicy(ctx, fresh, []byte("zombie"), nil),
		"SetPolicyCursor":           old.SetPolicyCursor(ctx, d2),
	} {
		if !errors.Is(err, store.ErrFenced) {
			t.Errorf("fenced writer's %s = %v, want ErrFenced", what, err)
		}
	}
	if got := mustPolicyState(t, ctx, st, u); string(got) != "v2" {
		t.Fatalf("state after the fenced calls = %q, want \"v2\"", got)
	}
	if got := mustPolicyState(t, ctx, st, fresh); got != nil {
		t.Fatalf("a fenced PutPolicy created a state: %q", got)
	}
	if got := mustPolicyCursor(t, ctx, st, scope); !sameDue(got, cursor) {
		t.Fatalf("cursor after the fenced SetPolicyCursor = %s, want %s", fmtDue(got), fmtDue(cursor))
	}
	wantDue(t, "due index after the fenced calls", mustPolicyDue(t, ctx, st, scope, cursor, farFuture, 100), due)

	// The new writer works.
	mustPutPolicy(t, ctx, cur, u, []byte("v3"), store.PolicyDue{At: base.Add(time.Minute), UserID: u, Key: "k3"})
	mustSetCursor(t, ctx, cur, d2)
	if got := mustPolicyState(t, ctx, st, u); string(got) != "v3" {
		t.Fatalf("state after the new writer's put = %q", got)
	}
	wantDue(t, "due index after the new writer", mustPolicyDue(t, ctx, st, scope, d2, farFuture, 100),
		[]store.PolicyDue{{At: base.Add(time.Minute), UserID: u, Key: "k3"}})
}

// policyConcurrent: PutPolicy for many users in parallel through one
// Writer (the enricher's batches in flight share it).
func (s *suite) policyConcurrent(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	const goroutines, perG = 4, 15
	base := policyBase()
	users := make([][]string, goroutines)
	var all []store.PolicyDue
	for g := range users {
		for i := range perG {
			u := s.user(fmt.Sprintf("pc%d-%d", g, i))
			users[g] = append(users[g], u)
			all = append(all, store.PolicyDue{At: base.Add(time.Duration(i) * time.Millisecond), UserID: u, Key: "k"})
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i, u := range users[g] {
				// Twice: the second put replaces the first.
				for v := range 2 {
					state := fmt.Appendf(nil, "%s/%d", u, v)
					d := store.PolicyDue{At: base.Add(time.Duration(i) * time.Millisecond), UserID: u, Key: "k"}
					if err := w.PutPolicy(ctx, u, state, []store.PolicyDue{d}); err != nil {
						t.Errorf("PutPolicy(%s): %v", u, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, us := range users {
		for _, u := range us {
			if got := mustPolicyState(t, ctx, st, u); string(got) != u+"/1" {
				t.Fatalf("PolicyState(%s) = %q, want %q", u, got, u+"/1")
			}
		}
	}
	wantDue(t, "due index after parallel puts", allDue(t, ctx, st, w.Scope()), sortedDue(all))
}

// policyFenceRace fences a scope while its old Writer keeps putting one
// user's state: the old writer's puts end with ErrFenced, and the state
// is the new writer's, whatever the old one had in flight when the fence
// happened (the contract: a put past the fence check cannot override what
// the new Writer wrote).
func (s *suite) policyFenceRace(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("pol-race")
	old := mustFence(t, ctx, st, scope)
	u := s.user("pol-race")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		// Bounded: a store that never fences fails promptly.
		for i := 0; i < 10000; i++ {
			err := old.PutPolicy(ctx, u, fmt.Appendf(nil, "old-%d", i), nil)
			if i == 0 {
				close(started)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- errors.New("10000 puts of the old writer succeeded")
	}()
	<-started
	cur := mustFence(t, ctx, st, scope)
	mustPutPolicy(t, ctx, cur, u, []byte("new"))
	if err := <-done; !errors.Is(err, store.ErrFenced) {
		t.Fatalf("old writer's puts ended with %v, want ErrFenced", err)
	}
	if got := mustPolicyState(t, ctx, st, u); string(got) != "new" {
		t.Fatalf("state after the race = %q, want the new writer's \"new\"", got)
	}
}
