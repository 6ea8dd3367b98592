package main

import (
	"slices"
	"sync"
	"time"
)

// key is one expected delivery: an event for a user.
type key struct{ user, event string }

// tally counts deliveries against what was produced, so that a duplicate
// cannot stand in for a missing notification: only the first delivery of
// each produced (user, event id) counts as delivered and has its latency
// recorded. It is safe for concurrent use.
type tally struct {
	mu         sync.Mutex
	produced   map[key]struct{}
	seen       map[key]int
	lastSeq    map[string]uint64
	latencies  []time.Duration
	duplicate  int
	unexpected int // deliveries of events this run never produced
	outOfOrder int // first deliveries with a seq not above the user's last one
	first      time.Time
	last       time.Time // of the last first delivery
	done       chan struct{}
	closed     bool
	sealed     bool // no more produce calls
}

func newTally(events int) *tally {
	return &tally{
		produced:  make(map[key]struct{}, events),
		seen:      make(map[key]int, events),
		lastSeq:   map[string]uint64{},
		latencies: make([]time.Duration, 0, events),
		done:      make(chan struct{}),
	}
}

// produce records an event about to be produced; call it before the
// record is handed to the producer so that its delivery finds it.
func (t *tally) produce(user, event string) {
	t.mu.Lock()
	t.produced[key{user, event}] = struct{}{}
	t.mu.Unlock()
}

// seal says every event was produced: from now on done is closed once
// each of them was delivered.
func (t *tally) seal() {
	t.mu.Lock()
	t.sealed = true
	t.checkLocked()
	t.mu.Unlock()
}

// deliver records one notification frame received at now.
func (t *tally) deliver(user, event string, seq uint64, lat time.Duration, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{user, event}
	if _, ok := t.produced[k]; !ok {
		t.unexpected++
		return
	}
	t.seen[k]++
	if t.seen[k] > 1 {
		t.duplicate++
		return
	}
	if last, ok := t.lastSeq[user]; ok && seq <= last {
		t.outOfOrder++
	} else {
		t.lastSeq[user] = seq
	}
	t.latencies = append(t.latencies, lat)
	if t.first.IsZero() {
		t.first = now
	}
	t.last = now
	t.checkLocked()
}

func (t *tally) checkLocked() {
	if t.sealed && !t.closed && len(t.latencies) == len(t.produced) {
		t.closed = true
		close(t.done)
	}
}

// summary is what a run measured.
type summary struct {
	Produced, Delivered, Missing, Duplicate, Unexpected, OutOfOrder int
	P50, P90, P99, Max                                              time.Duration
	First, Last                                                     time.Time
}

// ok reports whether every produced event was delivered exactly once.
func (s summary) ok() bool { return s.Missing == 0 && s.Duplicate == 0 && s.Unexpected == 0 }

func (t *tally) summary() summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := slices.Clone(t.latencies)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return summary{
		Produced: len(t.produced), Delivered: len(lat), Missing: len(t.produced) - len(lat),
		Duplicate: t.duplicate, Unexpected: t.unexpected, OutOfOrder: t.outOfOrder,
		P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: pct(1),
		First: t.first, Last: t.last,
	}
}
