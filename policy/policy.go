package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	herald "github.com/heraldhq/herald"
)

// Action is what a record's outcome does with its event.
type Action uint8

// The actions of an Outcome.
const (
	Deliver  Action = iota + 1 // deliver the event as today (admitted, or under cap)
	Fold                       // folded into a digest window (held)
	Drop                       // rate excess with excess: drop
	Capped                     // daily cap reached
	Overflow                   // governed but MaxOpenWindows reached (or the state is full): delivered as ordinary
	Ignore                     // a tick for a window that is not open (closed already, or never)
	Emit                       // a tick that closed its window: deliver Closed (unless Capped)
)

var actionNames = [...]string{"", "deliver", "fold", "drop", "capped", "overflow", "ignore", "emit"}

// String is the action's metric label ("deliver", "fold", ...).
func (a Action) String() string {
	if int(a) < len(actionNames) && a != 0 {
		return actionNames[a]
	}
	return "unknown"
}

// Outcome is the decision for one record: an event (Apply) or a tick
// (Tick).
type Outcome struct {
	Action    Action `json:"a"`
	Throttled bool   `json:"t,omitempty"` // the rate limit refused it (Drop, or Fold as excess)
	// Closed are digests closed by this record, in order (a tick: at most
	// one; an event into a past-due window: that window's). Each carries
	// whether the cap let it through.
	Closed []Closed `json:"c,omitempty"`
	// Due is the due entry of a window this record opened (nil if none):
	// the caller adds it to PutPolicy's due list. Not recorded.
	Due *Due `json:"-"`
}

// Closed is a digest closed by a record.
type Closed struct {
	Event  herald.Event `json:"e"`
	Capped bool         `json:"x,omitempty"` // the daily cap dropped it
}

// Due is a window's entry in the due index (store.PolicyDue without the
// user): At is in UTC, at microsecond precision.
type Due struct {
	At  time.Time
	Key string
}

// MaxKeyBytes bounds a window id (store.MaxPolicyKeyBytes).
const MaxKeyBytes = 1024

// keySep separates the type from the collapse key in a window id.
const keySep = '\x1f'

// WindowID is the id of the window of type t and digest key k (the
// collapse key, or t when the event has none): t, U+001F, k. A k too long
// for MaxKeyBytes (a collapse key of 256 multi-byte characters) is
// replaced by "sha256:" and its hex digest.
func WindowID(t, k string) string {
	if len(t)+1+len(k) > MaxKeyBytes {
		sum := sha256.Sum256([]byte(k))
		k = "sha256:" + hex.EncodeToString(sum[:])
	}
	return t + string(keySep) + k
}

// Policy is a validated Config, compiled; immutable, safe for concurrent
// use. A reload builds a new Policy (states carry over: see the package
// doc).
type Policy struct {
	types map[string]*rule
	names []string
}

// rule is a compiled TypePolicy; durations in µs.
type rule struct {
	digest       bool  // has a digest: section
	window       int64 // digest window (digest.window, else rate.per)
	title        titleTemplate
	rate         bool
	limit        int
	per          int64
	excessDigest bool
	cap          int
}

// New validates c and compiles it. New(Config{}) governs nothing.
func New(c Config) (*Policy, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{types: make(map[string]*rule, len(c.Types))}
	for t, tp := range c.Types {
		r := &rule{cap: tp.DailyCap}
		if d := tp.Digest; d != nil {
			r.digest = true
			r.window = time.Duration(d.Window).Microseconds()
			r.title, _ = compileTitle(d.Title) // checked by Validate
		}
		if rt := tp.Rate; rt != nil {
			r.rate, r.limit, r.per = true, rt.Limit, time.Duration(rt.Per).Microseconds()
			r.excessDigest = rt.Excess == ExcessDigest
			if !r.digest {
				r.window = r.per
			}
		}
		p.types[t] = r
		p.names = append(p.names, t)
	}
	slices.Sort(p.names)
	return p, nil
}

// Governs reports whether ev is subject to p: its type has an entry and
// its priority is not high.
func (p *Policy) Governs(ev *herald.Event) bool {
	if p == nil || ev == nil || ev.Priority == herald.PriorityHigh {
		return false
	}
	_, ok := p.types[ev.Type]
	return ok
}

// Types returns the configured types, sorted (for metric labels).
func (p *Policy) Types() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.names)
}

// Apply decides ev at now for a user whose local time is loc, and updates
// s; see the package doc for the order of evaluation. ev should be
// governed (p.Governs(ev)); an event that is not is delivered and s is
// left alone. Apply does not record the decision: the caller calls
// s.Record(offset, outcome).
func (p *Policy) Apply(s *State, ev *herald.Event, now time.Time, loc *time.Location) Outcome {
	if !p.Governs(ev) {
		return Outcome{Action: Deliver}
	}
	r := p.types[ev.Type]
	nowUS := micros(now)
	day := localDay(nowUS, loc)
	if ev.UserID != "" {
		s.User = ev.UserID
	}
	p.gc(s, nowUS, day)
	defer s.tidy()

	if r.rate {
		log := s.Rates[ev.Type]
		if countAfter(log, nowUS-r.per) >= r.limit {
			if !r.excessDigest {
				return Outcome{Action: Drop, Throttled: true}
			}
			o := p.fold(s, ev, r, nowUS, loc)
			o.Throttled = true
			return o
		}
		if !takeCap(s, ev.Type, r.cap, day) {
			return Outcome{Action: Capped}
		}
		if s.Rates == nil {
			s.Rates = make(map[string][]int64)
		}
		i, _ := slices.BinarySearch(log, nowUS+1) // after equal times
		s.Rates[ev.Type] = slices.Insert(log, i, nowUS)
		return Outcome{Action: Deliver}
	}
	if r.digest {
		return p.fold(s, ev, r, nowUS, loc)
	}
	if !takeCap(s, ev.Type, r.cap, day) {
		return Outcome{Action: Capped}
	}
	return Outcome{Action: Deliver}
}

// Tick closes the window key iff it is open and due at or before dueAt
// (the due time the tick was produced for, compared in µs): a later
// window of the same key has a later due, so a stale or duplicated tick
// cannot close it early. It returns Outcome{Action: Ignore} when nothing
// closed, else Emit with the one digest in Closed. It works for types no
// longer in p (reloaded away): default title, no cap.
func (p *Policy) Tick(s *State, key string, dueAt, now time.Time, loc *time.Location) Outcome {
	w := s.Windows[key]
	if w == nil || w.Due > micros(dueAt) {
		return Outcome{Action: Ignore}
	}
	nowUS := micros(now)
	day := localDay(nowUS, loc)
	p.gc(s, nowUS, day)
	c := p.close(s, key, w, nowUS, day)
	s.tidy()
	return Outcome{Action: Emit, Closed: []Closed{c}}
}

// fold puts ev in the window of its key, closing that window first if it
// is past due, opening one if none is open.
func (p *Policy) fold(s *State, ev *herald.Event, r *rule, nowUS int64, loc *time.Location) Outcome {
	k := ev.CollapseKey
	if k == "" {
		k = ev.Type
	}
	id := WindowID(ev.Type, k)
	var o Outcome
	w := s.Windows[id]
	if w != nil && w.Due <= nowUS {
		o.Closed = append(o.Closed, p.close(s, id, w, nowUS, localDay(nowUS, loc)))
		w = nil
	}
	if w == nil {
		if len(s.Windows) >= MaxOpenWindows || s.approxSize() > windowBudget {
			o.Action = Overflow
			return o
		}
		w = &Window{N: s.nextNumber(), Type: ev.Type, Key: k, Opened: nowUS, Due: nowUS + r.window}
		if s.Windows == nil {
			s.Windows = make(map[string]*Window)
		}
		s.Windows[id] = w
		o.Due = &Due{At: fromMicros(w.Due), Key: id}
	}
	w.add(ev)
	o.Action = Fold
	return o
}

// windowBudget is the estimated state size (approxSize) above which no
// new window opens (Overflow): half of MaxStateBytes, leaving room for
// the open windows to take newer, longer titles and bodies and for the
// rate logs and decisions.
const windowBudget = MaxStateBytes / 2

// add folds ev into w.
func (w *Window) add(ev *herald.Event) {
	ca := micros(ev.CreatedAt)
	if w.Count == 0 || ca < w.First {
		w.First = ca
	}
	if w.Count == 0 || ca > w.Last {
		w.Last = ca
	}
	w.Count++
	w.IDs = pushNewest(w.IDs, ev.ID, MaxWindowIDs)
	if ev.Title != "" {
		w.Titles = pushNewest(w.Titles, ev.Title, MaxWindowTitles)
	}
	if ev.Body != "" {
		w.Body = ev.Body
	}
}

// pushNewest puts v first in list, keeping at most n.
func pushNewest(list []string, v string, n int) []string {
	if len(list) < n {
		list = append(list, "")
	}
	copy(list[1:], list)
	list[0] = v
	return list
}

// close removes window id from s and returns its digest, counted
// against the type's daily cap if the type still has one.
func (p *Policy) close(s *State, id string, w *Window, nowUS int64, day string) Closed {
	delete(s.Windows, id)
	r := p.types[w.Type]
	var title titleTemplate
	limit := 0
	if r != nil {
		title, limit = r.title, r.cap
	}
	c := Closed{Event: digestEvent(s.User, w, title, nowUS)}
	c.Capped = !takeCap(s, w.Type, limit, day)
	return c
}

// takeCap counts one delivery of type t on day against limit (0: no
// cap), reporting false if the cap is reached.
func takeCap(s *State, t string, limit int, day string) bool {
	if limit <= 0 {
		return true
	}
	c := s.Caps[t]
	if c.Day != day {
		c = Cap{Day: day}
	}
	if c.Count >= limit {
		return false
	}
	c.Count++
	if s.Caps == nil {
		s.Caps = make(map[string]Cap)
	}
	s.Caps[t] = c
	return true
}

// gc drops what no rule reads any more: rate logs of types without a
// rate (reloaded away) and admissions that left their window, cap
// counters of types without a cap or of another day. Windows are not
// touched: they close on their tick whatever the policy.
func (p *Policy) gc(s *State, nowUS int64, day string) {
	for t, log := range s.Rates {
		r := p.types[t]
		if r == nil || !r.rate {
			delete(s.Rates, t)
			continue
		}
		if i := firstAfter(log, nowUS-r.per); i > 0 {
			s.Rates[t] = slices.Delete(log, 0, i)
		}
	}
	for t, c := range s.Caps {
		if r := p.types[t]; r == nil || r.cap == 0 || c.Day != day {
			delete(s.Caps, t)
		}
	}
}

// firstAfter is the index of the first admission of log after t.
func firstAfter(log []int64, t int64) int {
	i, _ := slices.BinarySearch(log, t+1)
	return i
}

// countAfter is the number of admissions in log after t: those in the
// sliding window (t, now] (and any later, should now have gone back).
func countAfter(log []int64, t int64) int { return len(log) - firstAfter(log, t) }

// localDay is the date of the instant us in loc (UTC if nil).
func localDay(us int64, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return time.UnixMicro(us).In(loc).Format(time.DateOnly)
}
