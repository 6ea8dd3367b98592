package main

import (
	"testing"
	"time"
)

func TestTallyDuplicateCannotHideMissing(t *testing.T) {
	tl := newTally(3)
	for _, e := range []string{"e1", "e2", "e3"} {
		tl.produce("u1", e)
	}
	tl.seal()
	now := time.Now()
	tl.deliver("u1", "e1", 1, time.Millisecond, now)
	tl.deliver("u1", "e2", 2, 2*time.Millisecond, now)
	tl.deliver("u1", "e2", 2, 3*time.Millisecond, now) // duplicate: must not stand in for e3
	select {
	case <-tl.done:
		t.Fatal("done with e3 never delivered")
	default:
	}
	s := tl.summary()
	if s.Produced != 3 || s.Delivered != 2 || s.Missing != 1 || s.Duplicate != 1 || s.ok() {
		t.Fatalf("summary = %+v", s)
	}
	tl.deliver("u1", "e3", 3, time.Millisecond, now)
	select {
	case <-tl.done:
	default:
		t.Fatal("not done after every event was delivered")
	}
	if s := tl.summary(); s.Missing != 0 || s.Duplicate != 1 || s.ok() {
		t.Fatalf("summary = %+v", s)
	}
}

func TestTallyUnexpectedAndOrder(t *testing.T) {
	tl := newTally(2)
	tl.produce("u1", "e1")
	tl.produce("u1", "e2")
	tl.produce("u2", "e1") // same event id, other user: a separate delivery
	now := time.Now()
	tl.deliver("u1", "e2", 5, 0, now)
	tl.deliver("u1", "e1", 4, 0, now) // lower seq after a higher one
	tl.deliver("u2", "e9", 1, 0, now) // never produced
	select {
	case <-tl.done:
		t.Fatal("done before seal")
	default:
	}
	tl.deliver("u2", "e1", 1, 0, now)
	tl.seal()
	select {
	case <-tl.done:
	default:
		t.Fatal("not done after seal with everything delivered")
	}
	s := tl.summary()
	if s.Delivered != 3 || s.Missing != 0 || s.Duplicate != 0 || s.OutOfOrder != 1 || s.Unexpected != 1 || s.ok() {
		t.Fatalf("summary = %+v", s)
	}
}
