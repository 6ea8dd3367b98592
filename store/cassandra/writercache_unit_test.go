package cassandra

import (
	"fmt"
	"testing"
)

// TestWriterCacheGenerations: the cache keeps at most about its budget of
// event ids, hands a state back only to the writer it was put by, and
// forgets a state that is taken and not put back.
func TestWriterCacheGenerations(t *testing.T) {
	c := newWriterCache(64 * 4) // userCap 4
	w1, w2 := &writer{}, &writer{}
	state := func(w *writer, ids ...string) *userState {
		st := &userState{owner: w, ids: map[uint64]struct{}{}}
		c.add(st, ids)
		return st
	}
	c.put("u1", state(w1, "a", "b"))
	if st := c.take(w2, "u1"); st != nil {
		t.Fatalf("take by another writer = %+v, want nil", st)
	}
	if st := c.take(w1, "u1"); st != nil {
		t.Fatalf("take after another writer's take = %+v, want nil (the state is gone)", st)
	}
	c.put("u1", state(w1, "a", "b"))
	st := c.take(w1, "u1")
	if st == nil || !c.known(st, []string{"zz", "b"}) || c.known(st, []string{"zz"}) {
		t.Fatalf("take = %+v: want the state, knowing b and not zz", st)
	}
	if c.take(w1, "u1") != nil {
		t.Fatal("a taken state is still in the cache")
	}

	// Over the per-user cap the state turns heavy: nothing kept, every id
	// maybe known.
	heavy := state(w1, "1", "2", "3", "4", "5")
	if !heavy.heavy || heavy.ids != nil || !c.known(heavy, []string{"new"}) {
		t.Fatalf("state over the cap = %+v, want heavy", heavy)
	}

	// Many users: the two generations hold at most budget ids (plus one
	// user over the half), and the recent ones are kept.
	for i := range 1000 {
		c.put(fmt.Sprint("user-", i), state(w1, "x", "y"))
		total := 0
		c.mu.Lock()
		for _, g := range []map[string]*userState{c.cur, c.old} {
			for _, s := range g {
				total += s.size()
			}
		}
		c.mu.Unlock()
		if total > c.budget+c.userCap+1 {
			t.Fatalf("after %d puts the cache holds %d ids, budget %d", i+1, total, c.budget)
		}
	}
	if c.take(w1, "user-999") == nil || c.take(w1, "user-998") == nil {
		t.Fatal("the most recent states were evicted")
	}
	if c.take(w1, "user-0") != nil {
		t.Fatal("the oldest state survived 1000 puts in a budget of 256")
	}

	off := newWriterCache(-1)
	if off != nil || off.take(w1, "u") != nil {
		t.Fatal("a negative budget must turn the cache off")
	}
	off.put("u", state(w1)) // no-op on nil
}
