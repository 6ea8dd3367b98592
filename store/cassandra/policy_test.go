//go:build integration

package cassandra

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/store"
)

// TestPolicyFencedLateWrite: the zombie case for the policy tables. Writer
// 1's calls that were past their epoch check when writer 2 fenced the
// scope land after writer 2's writes: they lose on every user writer 2
// wrote (a put or a delete), a user writer 2 has not written starts from
// the late state until writer 2 writes it, and the cursor stays writer
// 2's. Writer 1's next calls are refused.
func TestPolicyFencedLateWrite(t *testing.T) {
	ctx := ctxFor(t)
	s1, s2 := openStore(t, testConfig(t)), openStore(t, testConfig(t))
	scope := uniq("scope")
	uA, uB, uC := uniq("pa"), uniq("pb"), uniq("pc")
	at := time.Date(2026, 12, 2, 16, 30, 0, 0, time.UTC)
	w1, err := s1.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if err := w1.PutPolicy(ctx, uA, []byte("a1"), []store.PolicyDue{{At: at, UserID: uA, Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	if err := w1.PutPolicy(ctx, uB, []byte("b1"), nil); err != nil {
		t.Fatal(err)
	}

	w2, err := s2.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.PutPolicy(ctx, uA, []byte("a2"), nil); err != nil {
		t.Fatal(err)
	}
	if err := w2.PutPolicy(ctx, uB, nil, nil); err != nil { // deletes
		t.Fatal(err)
	}
	c2 := store.PolicyDue{At: at, UserID: uA, Key: "k\xff"}
	if err := w2.SetPolicyCursor(ctx, c2); err != nil {
		t.Fatal(err)
	}

	// The late arrivals of writer 1 (past their check before the fence).
	z := w1.(*writer)
	late := store.PolicyDue{At: at.Add(time.Minute), UserID: uA, Key: "z"}
	for _, p := range []struct {
		user  string
		state []byte
	}{{uA, []byte("zombie")}, {uA, nil}, {uB, []byte("zombie")}, {uC, []byte("c1")}} {
		if err := z.putPolicyChecked(ctx, p.user, p.state, []store.PolicyDue{late}); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.setCursorChecked(ctx, store.PolicyDue{At: at.Add(time.Hour), UserID: uA, Key: "z"}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		user string
		want []byte
	}{{uA, []byte("a2")}, {uB, nil}, {uC, []byte("c1")}} {
		if got, err := s2.PolicyState(ctx, c.user); err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("PolicyState(%s) = %q, %v after the late writes; want %q", c.user, got, err, c.want)
		}
	}
	if got, err := s2.PolicyCursor(ctx, scope); err != nil || got != c2 {
		t.Fatalf("PolicyCursor = %+v, %v; want writer 2's %+v", got, err, c2)
	}
	// uC: writer 2's first write replaces the state it started from.
	if err := w2.PutPolicy(ctx, uC, []byte("c2"), nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.PolicyState(ctx, uC); string(got) != "c2" {
		t.Fatalf("PolicyState(uC) = %q, want c2", got)
	}
	// The late due entry is there (harmless: no window of uA is due then).
	if got, err := s2.PolicyDue(ctx, scope, c2, at.Add(time.Hour), 10); err != nil || len(got) != 1 || got[0] != late {
		t.Fatalf("PolicyDue after the cursor = %+v, %v; want the late entry", got, err)
	}

	if err := w1.PutPolicy(ctx, uA, []byte("zombie"), nil); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced writer's PutPolicy = %v, want ErrFenced", err)
	}
	if err := w1.SetPolicyCursor(ctx, store.PolicyDue{At: at.Add(2 * time.Hour)}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced writer's SetPolicyCursor = %v, want ErrFenced", err)
	}
	if got, _ := s2.PolicyState(ctx, uA); string(got) != "a2" {
		t.Fatalf("PolicyState(uA) = %q, want a2", got)
	}
}

// TestPolicyDueAcrossBuckets: a scan in small pages walks entries spread
// over a week of hour buckets and one a month older, in order, at
// microsecond precision, and stops at until; a scan with an until
// millennia ahead reads only the buckets that exist.
func TestPolicyDueAcrossBuckets(t *testing.T) {
	ctx := ctxFor(t)
	s := openStore(t, testConfig(t))
	scope := uniq("scope")
	w, err := s.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var want []store.PolicyDue
	for k := range 24 {
		at := base.Add(time.Duration(k) * 7 * time.Hour).Add(time.Duration(k) * 1234567891) // ns are truncated
		for _, u := range []string{"u2", "u1"} {
			d := store.PolicyDue{At: at, UserID: u, Key: "t\x1fk"}
			raw := store.PolicyDue{At: at, UserID: u, Key: "\xff\x00raw"} // keys are bytes, not UTF-8
			if err := w.PutPolicy(ctx, u, []byte("s"), []store.PolicyDue{d, raw, {At: at.Add(-time.Microsecond), UserID: u, Key: "b"}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, store.PolicyDue{At: at.Truncate(time.Microsecond), UserID: u, Key: "t\x1fk"},
				store.PolicyDue{At: at.Truncate(time.Microsecond), UserID: u, Key: raw.Key},
				store.PolicyDue{At: at.Add(-time.Microsecond).Truncate(time.Microsecond), UserID: u, Key: "b"})
		}
	}
	old := store.PolicyDue{At: base.Add(-store.PolicyDueRetention - 2*time.Hour), UserID: "u1", Key: "old"}
	if err := w.PutPolicy(ctx, "u1", []byte("s"), []store.PolicyDue{old}); err != nil {
		t.Fatal(err)
	}
	want = append(want, old) // kept: written now, it expires a retention from now
	slices.SortFunc(want, func(a, b store.PolicyDue) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	until := want[len(want)-5].At // the last group's "b" entries: its four others are after until
	var got []store.PolicyDue
	var cur store.PolicyDue
	for range 100 {
		page, err := s.PolicyDue(ctx, scope, cur, until, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		cur = page[len(page)-1]
	}
	if !reflect.DeepEqual(got, want[:len(want)-4]) {
		t.Fatalf("paged scan:\n got %v\nwant %v", got, want[:len(want)-4])
	}
	all, err := s.PolicyDue(ctx, scope, store.PolicyDue{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10_000)
	if err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("one scan = %v, %v\nwant %v", all, err, want)
	}
	// A scan up to an entry more than a retention back finds it.
	if got, err := s.PolicyDue(ctx, scope, store.PolicyDue{}, old.At, 10); err != nil || len(got) != 1 || got[0] != old {
		t.Fatalf("scan up to the old entry = %v, %v", got, err)
	}
}
