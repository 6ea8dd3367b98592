package policy

import (
	// The zone database is embedded so the timezone tests run (never skip)
	// on a machine without one.
	_ "time/tzdata"

	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustPolicy(t testing.TB, y string) *Policy {
	t.Helper()
	c, err := decodeConfig(t, y)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("no zone data for %s: %v", name, err)
	}
	return loc
}

// event is an event of type typ created at at.
func event(id, typ string, at time.Time) *herald.Event {
	return &herald.Event{ID: id, UserID: "alice", Type: typ, Priority: herald.PriorityNormal, CreatedAt: at}
}

func TestGoverns(t *testing.T) {
	p := mustPolicy(t, "types: {like: {daily_cap: 1}}")
	like := event("e", "like", t0)
	if !p.Governs(like) {
		t.Error("like not governed")
	}
	for _, pr := range []herald.Priority{herald.PriorityNormal, herald.PriorityLow, ""} {
		like.Priority = pr
		if !p.Governs(like) {
			t.Errorf("priority %q not governed", pr)
		}
	}
	like.Priority = herald.PriorityHigh
	if p.Governs(like) {
		t.Error("high priority governed")
	}
	s := &State{}
	for i := range 5 {
		if o := p.Apply(s, like, t0.Add(time.Duration(i)*time.Second), time.UTC); o.Action != Deliver {
			t.Fatalf("high #%d: %v", i, o.Action)
		}
	}
	if !s.Empty() {
		t.Errorf("high priority changed the state: %+v", s)
	}
	if p.Governs(event("e", "comment", t0)) {
		t.Error("unconfigured type governed")
	}
}

// step is one event of a sequence: at t0+at, want action (and throttled).
type step struct {
	at        time.Duration
	want      Action
	throttled bool
}

func runSteps(t *testing.T, p *Policy, s *State, typ string, loc *time.Location, steps []step) {
	t.Helper()
	for i, st := range steps {
		now := t0.Add(st.at)
		o := p.Apply(s, event(fmt.Sprint("e", i), typ, now), now, loc)
		if o.Action != st.want || o.Throttled != st.throttled {
			t.Errorf("step %d at +%v: %v throttled=%v, want %v throttled=%v", i, st.at, o.Action, o.Throttled, st.want, st.throttled)
		}
	}
}

func TestRateBoundaries(t *testing.T) {
	p := mustPolicy(t, "types: {like: {rate: {limit: 10, per: 1h}}}")
	var steps []step
	for i := range 10 {
		steps = append(steps, step{at: time.Duration(i) * time.Minute, want: Deliver})
	}
	steps = append(steps,
		step{at: 10 * time.Minute, want: Drop, throttled: true},             // 11th
		step{at: time.Hour - time.Microsecond, want: Drop, throttled: true}, // oldest still in (now-1h, now]
		step{at: time.Hour, want: Deliver},                                  // oldest left: exactly oldest+1h
		step{at: time.Hour + time.Microsecond, want: Drop, throttled: true}, // t0+1m is still in
		step{at: time.Hour + time.Minute, want: Deliver},                    // t0+1m left
	)
	s := &State{}
	runSteps(t, p, s, "like", time.UTC, steps)
	if n := len(s.Rates["like"]); n != 10 {
		t.Errorf("log has %d admissions, want 10 (pruned, throttled not logged)", n)
	}
	// After a quiet period the log is pruned away entirely.
	p.Apply(s, event("late", "like", t0.Add(5*time.Hour)), t0.Add(5*time.Hour), time.UTC)
	if n := len(s.Rates["like"]); n != 1 {
		t.Errorf("log after 5h has %d admissions, want 1", n)
	}
}

func TestRateExcess(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    Action
		wantDue time.Duration
	}{
		{"drop default", "types: {like: {rate: {limit: 2, per: 1m}}}", Drop, 0},
		{"drop", "types: {like: {rate: {limit: 2, per: 1m, excess: drop}}}", Drop, 0},
		{"digest per rate.per", "types: {like: {rate: {limit: 2, per: 1m, excess: digest}}}", Fold, time.Minute},
		{"digest per digest.window", "types: {like: {rate: {limit: 2, per: 1m, excess: digest}, digest: {window: 15m}}}", Fold, 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, tt.yaml)
			s := &State{}
			runSteps(t, p, s, "like", time.UTC, []step{{0, Deliver, false}, {time.Second, Deliver, false}})
			now := t0.Add(2 * time.Second)
			o := p.Apply(s, event("x", "like", now), now, time.UTC)
			if o.Action != tt.want || !o.Throttled {
				t.Fatalf("excess: %v throttled=%v, want %v throttled", o.Action, o.Throttled, tt.want)
			}
			if tt.want == Fold {
				if o.Due == nil || !o.Due.At.Equal(now.Add(tt.wantDue)) || o.Due.Key != "like\x1flike" {
					t.Errorf("Due = %+v, want at +%v key like\\x1flike", o.Due, tt.wantDue)
				}
			} else if o.Due != nil || len(s.Windows) != 0 {
				t.Errorf("drop opened a window: %+v", o.Due)
			}
		})
	}
}

// closeAt ticks the window key at its own due time.
func closeAt(t *testing.T, p *Policy, s *State, key string, now time.Time, loc *time.Location) Outcome {
	t.Helper()
	w := s.Windows[key]
	if w == nil {
		t.Fatalf("no window %q", key)
	}
	return p.Tick(s, key, fromMicros(w.Due), now, loc)
}

func digestOf(t *testing.T, c Closed) digestBody {
	t.Helper()
	var d digestData
	if err := json.Unmarshal(c.Event.Data, &d); err != nil {
		t.Fatalf("digest data %s: %v", c.Event.Data, err)
	}
	// The event passes herald's own validation, unchanged.
	b, err := json.Marshal(c.Event)
	if err != nil {
		t.Fatal(err)
	}
	back, err := herald.DecodeEvent(b, time.Time{})
	if err != nil {
		t.Fatalf("DecodeEvent(digest): %v\n%s", err, b)
	}
	if back.ID != c.Event.ID || back.Title != c.Event.Title || !back.CreatedAt.Equal(c.Event.CreatedAt) {
		t.Errorf("digest did not survive DecodeEvent: %+v", back)
	}
	return d.Digest
}

func TestDigestFifty(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 10m}}}")
	s := &State{}
	for i := 1; i <= 50; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		ev := event(fmt.Sprint("e", i), "like", now.Add(-time.Millisecond))
		ev.Title, ev.Body, ev.CollapseKey = fmt.Sprint("T", i), fmt.Sprint("B", i), "post-1"
		o := p.Apply(s, ev, now, time.UTC)
		if o.Action != Fold || o.Throttled || len(o.Closed) != 0 {
			t.Fatalf("like %d: %+v", i, o)
		}
		if (o.Due != nil) != (i == 1) {
			t.Fatalf("like %d: Due %+v (only the first opens the window)", i, o.Due)
		}
	}
	key := "like\x1fpost-1"
	due := t0.Add(time.Second + 10*time.Minute)
	// A tick before the due time (another window's, say) closes nothing.
	if o := p.Tick(s, key, due.Add(-time.Microsecond), due, time.UTC); o.Action != Ignore {
		t.Fatalf("early tick: %v", o.Action)
	}
	closeNow := due.Add(3 * time.Second) // the tick is consumed a bit late
	o := p.Tick(s, key, due, closeNow, time.UTC)
	if o.Action != Emit || len(o.Closed) != 1 || o.Closed[0].Capped {
		t.Fatalf("tick: %+v", o)
	}
	ev := o.Closed[0].Event
	if ev.ID != "herald-digest-1" || ev.UserID != "alice" || ev.Type != "like" || ev.CollapseKey != "post-1" ||
		ev.Priority != herald.PriorityNormal || ev.Body != "B50" || !ev.CreatedAt.Equal(closeNow) {
		t.Errorf("digest event: %+v", ev)
	}
	if ev.Title != "T50 and 49 more" {
		t.Errorf("title %q", ev.Title)
	}
	d := digestOf(t, o.Closed[0])
	wantIDs := []string{"e50", "e49", "e48", "e47", "e46", "e45", "e44", "e43", "e42", "e41"}
	if d.Count != 50 || d.Key != "post-1" || strings.Join(d.EventIDs, ",") != strings.Join(wantIDs, ",") ||
		strings.Join(d.Titles, ",") != "T50,T49,T48" {
		t.Errorf("digest data: %+v", d)
	}
	if want := t0.Add(time.Second - time.Millisecond).Format(time.RFC3339Nano); d.FirstAt != want {
		t.Errorf("first_at %s, want %s", d.FirstAt, want)
	}
	if want := t0.Add(50*time.Second - time.Millisecond).Format(time.RFC3339Nano); d.LastAt != want {
		t.Errorf("last_at %s, want %s", d.LastAt, want)
	}
	if len(s.Windows) != 0 {
		t.Errorf("window still open")
	}
	// Duplicate tick: nothing left to close.
	if o := p.Tick(s, key, due, closeNow, time.UTC); o.Action != Ignore || len(o.Closed) != 0 {
		t.Errorf("duplicate tick: %+v", o)
	}
	if o := p.Tick(s, "like\x1fnever", due, closeNow, time.UTC); o.Action != Ignore {
		t.Errorf("tick of an unknown window: %+v", o)
	}
}

func TestDigestTitles(t *testing.T) {
	tests := []struct {
		name, template string
		titles         []string // of the events, oldest first ("" = none)
		want           string
	}{
		{"default one", "", []string{"Bob liked"}, "Bob liked"},
		{"default many", "", []string{"Ann liked", "Bob liked"}, "Bob liked and 1 more"},
		{"no title", "", []string{"", ""}, "like and 1 more"},
		{"newest with title", "", []string{"Ann liked", ""}, "Ann liked and 1 more"},
		{"custom", "{count} likes: {newest} (+{others})", []string{"a", "b", "c"}, "3 likes: c (+2)"},
		{"custom one", "{count} likes: {newest} (+{others})", []string{"a"}, "1 likes: a (+0)"},
		{"literal", "New likes", []string{"a", "b"}, "New likes"},
		{"cut", "{newest}{newest}", []string{strings.Repeat("é", 200)}, strings.Repeat("é", herald.MaxTitleLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "types: {like: {digest: {window: 1m}}}"
			if tt.template != "" {
				y = fmt.Sprintf("types: {like: {digest: {window: 1m, title: %q}}}", tt.template)
			}
			p := mustPolicy(t, y)
			s := &State{}
			for i, title := range tt.titles {
				ev := event(fmt.Sprint("e", i), "like", t0)
				ev.Title = title
				p.Apply(s, ev, t0, time.UTC)
			}
			o := closeAt(t, p, s, "like\x1flike", t0.Add(time.Minute), time.UTC)
			if got := o.Closed[0].Event.Title; got != tt.want {
				t.Errorf("title %q, want %q", got, tt.want)
			}
			digestOf(t, o.Closed[0])
		})
	}
}

// TestDigestDataFits: 10 ids of 128 characters and 3 titles of 256
// four-byte characters do not fit in MaxDataBytes: the oldest titles go.
func TestDigestDataFits(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 1m}}}")
	s := &State{}
	for i := range 12 {
		ev := event(fmt.Sprintf("%03d%s", i, strings.Repeat("<", herald.MaxIDLen-3)), "like", t0)
		ev.Title = strings.Repeat("😀", herald.MaxTitleLen)
		ev.CollapseKey = strings.Repeat("&", herald.MaxCollapseKeyLen)
		p.Apply(s, ev, t0, time.UTC)
	}
	var key string
	for k := range s.Windows {
		key = k
	}
	o := closeAt(t, p, s, key, t0.Add(time.Minute), time.UTC)
	ev := o.Closed[0].Event
	if len(ev.Data) > herald.MaxDataBytes {
		t.Fatalf("data is %d bytes", len(ev.Data))
	}
	d := digestOf(t, o.Closed[0])
	if d.Count != 12 || len(d.Titles) >= MaxWindowTitles || len(d.EventIDs) == 0 || !strings.HasPrefix(d.EventIDs[0], "011") {
		t.Errorf("count %d, %d titles, %d ids (first %.3s)", d.Count, len(d.Titles), len(d.EventIDs), d.EventIDs[0])
	}
	if len(key) > MaxKeyBytes {
		t.Errorf("window id is %d bytes", len(key))
	}
}

func TestLongCollapseKeyWindowID(t *testing.T) {
	k := strings.Repeat("😀", herald.MaxCollapseKeyLen) // 1024 bytes
	id := WindowID("like", k)
	if len(id) > MaxKeyBytes || !strings.HasPrefix(id, "like\x1fsha256:") {
		t.Errorf("WindowID = %q (%d bytes)", id, len(id))
	}
	if WindowID("like", "post-1") != "like\x1fpost-1" {
		t.Error("short key hashed")
	}
	p := mustPolicy(t, "types: {like: {digest: {window: 1m}}}")
	s := &State{}
	ev := event("e", "like", t0)
	ev.CollapseKey = k
	o := p.Apply(s, ev, t0, time.UTC)
	if o.Due == nil || o.Due.Key != id {
		t.Fatalf("Due %+v", o.Due)
	}
	c := p.Tick(s, id, o.Due.At, o.Due.At, time.UTC)
	if c.Action != Emit || c.Closed[0].Event.CollapseKey != k {
		t.Errorf("closed: %+v", c)
	}
}

func TestTickLaterWindow(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 10m}}}")
	s := &State{}
	key := "like\x1flike"
	o1 := p.Apply(s, event("a", "like", t0), t0, time.UTC)
	if c := p.Tick(s, key, o1.Due.At, o1.Due.At, time.UTC); c.Action != Emit {
		t.Fatalf("first tick: %v", c.Action)
	}
	now := o1.Due.At.Add(time.Minute)
	o2 := p.Apply(s, event("b", "like", now), now, time.UTC)
	if o2.Due == nil || !o2.Due.At.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("second window Due %+v", o2.Due)
	}
	// The first window's tick again (a replayed or duplicated tick
	// record), consumed after the second window opened.
	if c := p.Tick(s, key, o1.Due.At, now.Add(time.Second), time.UTC); c.Action != Ignore {
		t.Fatalf("stale tick closed the later window: %+v", c)
	}
	if w := s.Windows[key]; w == nil || w.N != 2 || w.Count != 1 {
		t.Fatalf("second window: %+v", w)
	}
	c := p.Tick(s, key, o2.Due.At, o2.Due.At, time.UTC)
	if c.Action != Emit || c.Closed[0].Event.ID != "herald-digest-2" {
		t.Errorf("second tick: %+v", c)
	}
}

func TestPastDueClosedInline(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 10m}}}")
	s := &State{}
	p.Apply(s, event("a", "like", t0), t0, time.UTC)
	p.Apply(s, event("b", "like", t0), t0.Add(time.Minute), time.UTC)
	// The tick never came (an outage): the next event, at the due time,
	// closes the window and opens a new one.
	now := t0.Add(10 * time.Minute)
	o := p.Apply(s, event("c", "like", now), now, time.UTC)
	if o.Action != Fold || len(o.Closed) != 1 || o.Due == nil {
		t.Fatalf("outcome %+v", o)
	}
	c := o.Closed[0]
	if c.Event.ID != "herald-digest-1" || !c.Event.CreatedAt.Equal(now) || digestOf(t, c).Count != 2 {
		t.Errorf("closed %+v", c.Event)
	}
	if !o.Due.At.Equal(now.Add(10*time.Minute)) || s.Windows[o.Due.Key].N != 2 {
		t.Errorf("new window: %+v %+v", o.Due, s.Windows[o.Due.Key])
	}
	// The late tick of the first window finds the second not due.
	if c := p.Tick(s, o.Due.Key, t0.Add(10*time.Minute), now, time.UTC); c.Action != Ignore {
		t.Errorf("late tick: %+v", c)
	}
}

func TestMaxOpenWindows(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 1h}}}")
	s := &State{}
	fold := func(k string) Outcome {
		ev := event("e-"+k, "like", t0)
		ev.CollapseKey = k
		return p.Apply(s, ev, t0, time.UTC)
	}
	for i := range MaxOpenWindows {
		if o := fold(fmt.Sprint("k", i)); o.Action != Fold || o.Due == nil {
			t.Fatalf("window %d: %+v", i, o)
		}
	}
	if o := fold("one-more"); o.Action != Overflow || o.Due != nil {
		t.Fatalf("65th window: %+v", o)
	}
	if o := fold("k3"); o.Action != Fold {
		t.Errorf("an open window no longer folds: %v", o.Action)
	}
	if len(s.Windows) != MaxOpenWindows || s.NextWindow != MaxOpenWindows+1 {
		t.Errorf("%d windows, next %d", len(s.Windows), s.NextWindow)
	}
	// Closing one makes room.
	closeAt(t, p, s, "like\x1fk0", t0.Add(time.Hour), time.UTC)
	if o := fold("one-more"); o.Action != Fold || s.Windows[o.Due.Key].N != MaxOpenWindows+1 {
		t.Errorf("after a close: %+v", o)
	}
}

// TestStateBudget: windows of large bodies stop opening before the state
// outgrows what the store takes.
func TestStateBudget(t *testing.T) {
	p := mustPolicy(t, "types: {like: {digest: {window: 1h}}}")
	s := &State{}
	overflowed := false
	for i := range MaxOpenWindows {
		ev := event(strings.Repeat("i", herald.MaxIDLen-3)+fmt.Sprintf("%03d", i), "like", t0)
		ev.CollapseKey = strings.Repeat("k", herald.MaxCollapseKeyLen-3) + fmt.Sprintf("%03d", i)
		ev.Title, ev.Body = strings.Repeat("t", herald.MaxTitleLen), strings.Repeat("b", herald.MaxBodyLen)
		if p.Apply(s, ev, t0, time.UTC).Action == Overflow {
			overflowed = true
			break
		}
	}
	if !overflowed {
		t.Error("no overflow")
	}
	if _, err := s.Encode(); err != nil {
		t.Errorf("Encode: %v", err)
	}
}

func TestDailyCapTimezones(t *testing.T) {
	la, tokyo := mustLoc(t, "America/Los_Angeles"), mustLoc(t, "Asia/Tokyo")
	p := mustPolicy(t, "types: {like: {daily_cap: 2}}")
	// t0 is 2026-03-01 12:00Z. At 07:30Z it is 23:30 on Feb 28 in Los
	// Angeles (PST, -8) and 16:30 on Mar 1 in Tokyo (+9). Los Angeles
	// turns at 08:00Z, Tokyo at 15:00Z.
	base := -4*time.Hour - 30*time.Minute
	tests := []struct {
		name  string
		loc   *time.Location
		steps []step
	}{
		{"Los Angeles", la, []step{
			{base, Deliver, false}, {base + time.Minute, Deliver, false}, {base + 2*time.Minute, Capped, false},
			{base + 29*time.Minute, Capped, false},        // 23:59 local
			{-4 * time.Hour, Deliver, false},              // 08:00Z: local midnight
			{-4*time.Hour + time.Minute, Deliver, false},  // 2nd of Mar 1
			{-4*time.Hour + 2*time.Minute, Capped, false}, // 3rd
			{3 * time.Hour, Capped, false},                // 15:00Z: still Mar 1 in LA
			{12*time.Hour + time.Minute, Capped, false},   // 00:01Z Mar 2: 16:01 Mar 1 in LA
			{20 * time.Hour, Deliver, false},              // 08:00Z Mar 2
		}},
		{"Tokyo", tokyo, []step{
			{base, Deliver, false}, {base + time.Minute, Deliver, false}, {base + 2*time.Minute, Capped, false},
			{-4 * time.Hour, Capped, false},                 // 08:00Z: 17:00 in Tokyo, same day
			{3*time.Hour - time.Microsecond, Capped, false}, // 23:59:59.999999 Tokyo
			{3 * time.Hour, Deliver, false},                 // 15:00Z: Tokyo midnight
		}},
		{"UTC", time.UTC, []step{
			{base, Deliver, false}, {base + time.Minute, Deliver, false}, {base + 2*time.Minute, Capped, false},
			{12 * time.Hour, Deliver, false}, // 00:00Z Mar 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, p, &State{}, "like", tt.loc, tt.steps)
		})
	}
	// The same instant is a different local day.
	at := t0.Add(base)
	if localDay(micros(at), la) == localDay(micros(at), tokyo) {
		t.Error("same local day")
	}
}

func TestDailyCapCountsDigests(t *testing.T) {
	p := mustPolicy(t, `
types:
  like: {digest: {window: 1m}, daily_cap: 2}
  comment: {rate: {limit: 1, per: 1h, excess: digest}, daily_cap: 2}
`)
	s := &State{}
	// like: each closed digest counts 1; the folded events do not.
	for i := range 3 {
		now := t0.Add(time.Duration(i) * time.Hour)
		for j := range 5 {
			p.Apply(s, event(fmt.Sprint(i, j), "like", now), now, time.UTC)
		}
		o := closeAt(t, p, s, "like\x1flike", now.Add(time.Minute), time.UTC)
		if want := i == 2; o.Action != Emit || o.Closed[0].Capped != want {
			t.Errorf("like digest %d: %+v, want capped %v", i, o, want)
		}
	}
	// comment: an admitted event (1), then the excess is folded and its
	// digest counts (2), then the next admitted event is capped.
	s = &State{}
	runSteps(t, p, s, "comment", time.UTC, []step{{0, Deliver, false}, {time.Minute, Fold, true}, {2 * time.Minute, Fold, true}})
	if o := closeAt(t, p, s, "comment\x1fcomment", t0.Add(time.Hour), time.UTC); o.Closed[0].Capped {
		t.Errorf("2nd delivery capped")
	}
	now := t0.Add(2 * time.Hour)
	if o := p.Apply(s, event("late", "comment", now), now, time.UTC); o.Action != Capped || o.Throttled {
		t.Errorf("3rd delivery: %+v", o)
	}
	// A capped event is not an admission: the log still has one entry
	// (the first, which has left the window by now and is pruned).
	if n := len(s.Rates["comment"]); n != 0 {
		t.Errorf("log has %d entries", n)
	}
}

func TestReloadRemovesType(t *testing.T) {
	p1 := mustPolicy(t, `
types:
  like: {digest: {window: 10m, title: "{count} likes"}, daily_cap: 1}
  follow: {rate: {limit: 5, per: 1h}, daily_cap: 10}
`)
	s := &State{}
	p1.Apply(s, event("a", "like", t0), t0, time.UTC)
	p1.Apply(s, event("b", "like", t0), t0, time.UTC)
	p1.Apply(s, event("f", "follow", t0), t0, time.UTC)
	if len(s.Rates) != 1 || len(s.Caps) != 1 {
		t.Fatalf("state %+v", s)
	}
	p2 := mustPolicy(t, "types: {comment: {daily_cap: 5}}")
	now := t0.Add(time.Minute)
	p2.Apply(s, event("c", "comment", now), now, time.UTC)
	if s.Rates != nil || len(s.Caps) != 1 || s.Caps["follow"].Count != 0 {
		t.Errorf("logs and counters of removed types kept: %+v %+v", s.Rates, s.Caps)
	}
	if len(s.Windows) != 1 {
		t.Fatal("the window of a removed type was dropped")
	}
	o := closeAt(t, p2, s, "like\x1flike", t0.Add(10*time.Minute), time.UTC)
	if o.Action != Emit || o.Closed[0].Capped || o.Closed[0].Event.Title != "like and 1 more" {
		t.Errorf("closed under p2: %+v", o)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Deliver: "deliver", Emit: "emit", Overflow: "overflow", 0: "unknown", 99: "unknown"} {
		if a.String() != want {
			t.Errorf("%d.String() = %s", a, a.String())
		}
	}
}
