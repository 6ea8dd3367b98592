package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

func TestDecisions(t *testing.T) {
	s := &State{}
	if _, ok := s.Decided(5); ok {
		t.Fatal("empty state has a decision")
	}
	closed := []Closed{{Event: herald.Event{ID: "herald-digest-1"}, Capped: true}}
	s.Record(10, Outcome{Action: Fold, Due: &Due{Key: "k"}})
	s.Record(12, Outcome{Action: Drop, Throttled: true})
	s.Record(11, Outcome{Action: Emit, Closed: closed}) // out of order
	s.Record(12, Outcome{Action: Capped})               // replaces
	var offs []int64
	for _, d := range s.Decisions {
		offs = append(offs, d.Offset)
	}
	if fmt.Sprint(offs) != "[10 11 12]" {
		t.Fatalf("offsets %v", offs)
	}
	tests := []struct {
		off  int64
		want Outcome
		ok   bool
	}{
		{9, Outcome{}, false},
		{10, Outcome{Action: Fold}, true}, // Due is not recorded
		{11, Outcome{Action: Emit, Closed: closed}, true},
		{12, Outcome{Action: Capped}, true},
		{13, Outcome{}, false},
	}
	for _, tt := range tests {
		got, ok := s.Decided(tt.off)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decided(%d) = %+v, %v; want %+v, %v", tt.off, got, ok, tt.want, tt.ok)
		}
	}
	roundTrip(t, s)
	s.Prune(11)
	if _, ok := s.Decided(10); ok || len(s.Decisions) != 2 {
		t.Errorf("Prune(11) left %+v", s.Decisions)
	}
	s.Prune(11) // again: nothing
	s.Prune(100)
	if s.Decisions != nil || !s.Empty() {
		t.Errorf("Prune(100) left %+v", s.Decisions)
	}
}

// roundTrip checks Decode(Encode(s)) deep-equals s and returns the bytes.
func roundTrip(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode(s)): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("Decode(Encode(s)) differs:\n got %+v\nwant %+v\n%s", back, s, b)
	}
	return b
}

const fullConfig = `
types:
  like: {digest: {window: 10m, title: "{count} likes <&>"}, daily_cap: 30}
  comment: {rate: {limit: 3, per: 5m, excess: digest}, daily_cap: 20}
  follow: {rate: {limit: 2, per: 1m}}
  mention: {daily_cap: 4}
`

// churn drives s through n random events and ticks of user alice, over
// about n*20s, recording every outcome and pruning now and then.
func churn(t testing.TB, p *Policy, s *State, rng *rand.Rand, n int, loc *time.Location, check func()) {
	types := []string{"like", "comment", "follow", "mention"}
	var due []Due
	now := t0
	for i := range n {
		now = now.Add(time.Duration(rng.IntN(40_000_000)) * time.Microsecond)
		var o Outcome
		if len(due) > 0 && rng.IntN(4) == 0 {
			d := due[0]
			due = due[1:]
			o = p.Tick(s, d.Key, d.At, now, loc)
		} else {
			ev := event(fmt.Sprintf("ev-%d", i), types[rng.IntN(len(types))], now.Add(-time.Duration(rng.IntN(1000))*time.Nanosecond))
			ev.CollapseKey = []string{"", "post-1", "post-2 <b>"}[rng.IntN(3)]
			ev.Title = []string{"", "Ann & Bob", fmt.Sprint("title ", i)}[rng.IntN(3)]
			ev.Body = []string{"", "body\x00\n\"q\""}[rng.IntN(2)]
			o = p.Apply(s, ev, now, loc)
			if o.Due != nil {
				due = append(due, *o.Due)
			}
		}
		s.Record(int64(i), o)
		if i%17 == 16 {
			s.Prune(int64(i - 5))
		}
		if check != nil {
			check()
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	if b, err := (&State{}).Encode(); err != nil || string(b) != "{}" {
		t.Errorf("empty state encodes as %s, %v", b, err)
	}
	for _, b := range [][]byte{nil, {}} {
		if s, err := Decode(b); err != nil || !s.Empty() {
			t.Errorf("Decode(%q) = %+v, %v", b, s, err)
		}
	}
	p := mustPolicy(t, fullConfig)
	tokyo := mustLoc(t, "Asia/Tokyo")
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := &State{}
		var sawWindows, sawRates, sawCaps, sawClosed bool
		churn(t, p, s, rng, 300, tokyo, func() {
			roundTrip(t, s)
			sawWindows = sawWindows || len(s.Windows) > 0
			sawRates = sawRates || len(s.Rates) > 0
			sawCaps = sawCaps || len(s.Caps) > 0
			for _, d := range s.Decisions {
				sawClosed = sawClosed || len(d.Outcome.Closed) > 0
			}
		})
		if !sawWindows || !sawRates || !sawCaps || !sawClosed {
			t.Errorf("seed %d did not exercise everything: windows %v rates %v caps %v closed %v", seed, sawWindows, sawRates, sawCaps, sawClosed)
		}
	}
}

func TestEncodeTooLarge(t *testing.T) {
	s := &State{Rates: map[string][]int64{"like": make([]int64, MaxStateBytes/2)}}
	for i := range s.Rates["like"] {
		s.Rates["like"][i] = t0.UnixMicro() + int64(i)
	}
	if _, err := s.Encode(); !errors.Is(err, ErrStateTooLarge) {
		t.Errorf("Encode = %v, want ErrStateTooLarge", err)
	}
	if _, err := Decode(make([]byte, MaxStateBytes+1)); !errors.Is(err, ErrStateTooLarge) {
		t.Errorf("Decode of a too large state = %v", err)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	for _, b := range []string{
		"{",
		"[]",
		"null x",
		`{"w":{"k":null}}`,
		`{"n":2,"w":{"":{"n":1,"c":1,"t":"a","k":"b"}}}`,
		`{"n":3,"w":{"k":{"n":3,"c":1,"t":"a","k":"b"}}}`,
		`{"n":3,"w":{"k":{"n":0,"c":1,"t":"a","k":"b"}}}`,
		`{"n":3,"w":{"k":{"n":1,"c":0,"t":"a","k":"b"}}}`,
		`{"r":{"like":[3,2]}}`,
		`{"c":{"like":{"y":"2026-03-01","n":-1}}}`,
		`{"d":[{"o":2,"d":{"a":1}},{"o":1,"d":{"a":1}}]}`,
		`{"d":[{"o":2,"d":{"a":1}},{"o":2,"d":{"a":1}}]}`,
		`{"n":"x"}`,
		`{"w":{"k":{"n":1,"c":1}}}`,
		`{"n":2,"w":{"k":{"n":1,"c":1,"t":"like"}}}`,
		`{"d":[{"o":1,"d":{"a":0}}]}`,
		`{"d":[{"o":1,"d":{"a":8}}]}`,
		`{"r":{"like":[1e30]}}`,
	} {
		if s, err := Decode([]byte(b)); err == nil {
			t.Errorf("Decode(%s) = %+v, want an error", b, s)
		}
	}
	// The same minimal window, well formed, decodes.
	if _, err := Decode([]byte(`{"n":2,"w":{"k":{"n":1,"c":1,"t":"a","k":"b"}},"d":[{"o":1,"d":{"a":7}}]}`)); err != nil {
		t.Errorf("Decode of a minimal state: %v", err)
	}
	// Empty collections decode to the canonical nil.
	s, err := Decode([]byte(`{"w":{},"r":{"x":[]},"c":{},"d":[]}`))
	if err != nil || s.Windows != nil || s.Rates != nil || s.Caps != nil || s.Decisions != nil {
		t.Errorf("Decode of empty collections = %+v, %v", s, err)
	}
}

func FuzzDecodeState(f *testing.F) {
	p := mustPolicy(f, fullConfig)
	s := &State{}
	churn(f, p, s, rand.New(rand.NewPCG(1, 2)), 60, time.UTC, nil)
	seed, err := s.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"n":2,"w":{"a\u001fb":{"n":1,"t":"a","k":"b","c":1}}}`))
	f.Add([]byte(`{"d":[{"o":1,"d":{"a":7,"c":[{"e":{"id":"x","data":{ "a" : 1 }},"x":true}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := s.Encode()
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, enc)
		}
		enc2, err := back.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixpoint:\n%s\n%s", enc, enc2)
		}
		// The engine accepts whatever Decode accepted.
		p.Apply(back, event("e", "like", t0), t0, time.UTC)
		for k, w := range back.Windows {
			p.Tick(back, k, fromMicros(w.Due), t0, time.UTC)
		}
	})
}

func BenchmarkApplyDigest(b *testing.B) {
	p := mustPolicy(b, fullConfig)
	s := &State{}
	ev := event("e", "like", t0)
	ev.Title, ev.CollapseKey = "Bob liked your post", "post-1"
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Second) // a window of 600 events, then a new one inline
		o := p.Apply(s, ev, now, time.UTC)
		s.Record(int64(i), o)
		s.Prune(int64(i - 100))
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	p := mustPolicy(b, fullConfig)
	s := &State{}
	churn(b, p, s, rand.New(rand.NewPCG(3, 4)), 500, time.UTC, nil)
	for i := range 20 { // and 20 open windows of typical size
		ev := event(fmt.Sprint("w", i), "like", t0)
		ev.CollapseKey, ev.Title = fmt.Sprint("post-", i), strings.Repeat("t", 60)
		p.Apply(s, ev, t0.Add(time.Hour), time.UTC)
	}
	enc, err := s.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		enc, err := s.Encode()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStateDue(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 10m}}, comment: {digest: {window: 5m}}}")
	s := &State{}
	if d := s.Due(); len(d) != 0 {
		t.Fatalf("empty state: %v", d)
	}
	var opened []Due
	for i, typ := range []string{"like", "comment", "like", "comment"} {
		ev := event(fmt.Sprint("e", i), typ, t0)
		ev.CollapseKey = fmt.Sprint("k", i%3)
		now := t0.Add(time.Duration(i) * 7 * time.Nanosecond) // truncated to µs
		if o := p.Apply(s, ev, now, time.UTC); o.Due != nil {
			opened = append(opened, *o.Due)
		}
	}
	got := s.Due()
	if len(got) != 4 || len(opened) != 4 {
		t.Fatalf("Due = %v, opened %v", got, opened)
	}
	for i, d := range got {
		if d.At.Location() != time.UTC || d.At.Nanosecond()%1000 != 0 {
			t.Errorf("At %v not UTC µs", d.At)
		}
		if i > 0 && (d.At.Before(got[i-1].At) || d.At.Equal(got[i-1].At) && d.Key < got[i-1].Key) {
			t.Errorf("not sorted: %v", got)
		}
	}
	// The two comment windows (5m) first, each entry as Apply returned it.
	for _, o := range opened {
		found := false
		for _, d := range got {
			found = found || (d.Key == o.Key && d.At.Equal(o.At))
		}
		if !found {
			t.Errorf("opened %v not in Due %v", o, got)
		}
	}
	if !strings.HasPrefix(got[0].Key, "comment") || !strings.HasPrefix(got[3].Key, "like") {
		t.Errorf("order %v", got)
	}
}
