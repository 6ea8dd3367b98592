package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Limits of a State.
const (
	// MaxStateBytes bounds an encoded State: the value of
	// store.MaxPolicyStateBytes (this package does not import store).
	MaxStateBytes = 256 << 10
	// MaxOpenWindows bounds a user's open digest windows: an event that
	// would open one more is delivered as ordinary (Overflow).
	MaxOpenWindows = 64
	// MaxWindowIDs and MaxWindowTitles are how many of the newest event
	// ids and titles a window keeps for its digest.
	MaxWindowIDs    = 10
	MaxWindowTitles = 3
)

// ErrStateTooLarge is returned (wrapped) by Encode for a state that
// encodes to more than MaxStateBytes.
var ErrStateTooLarge = errors.New("policy: state too large")

// State is one user's policy state: open digest windows, rate logs,
// daily-cap counters and the decisions of the source records not yet
// known to be committed. The zero value (or Decode(nil)) is an empty
// state. A State is not safe for concurrent use; the enricher handles a
// user in one goroutine at a time.
//
// Times are unix microseconds (the store's precision), so that Encode
// and Decode round-trip exactly.
type State struct {
	// User is the user the state belongs to, taken from the events
	// Apply sees: a digest closed by Tick carries it as its UserID.
	User string `json:"u,omitempty"`
	// NextWindow is the number the next window gets (0 means 1).
	// Numbers are never reused, even after every window has closed, as
	// they are the digests' event ids ("herald-digest-<n>"): a state
	// that has opened a window is therefore never Empty.
	NextWindow uint64 `json:"n,omitempty"`
	// Windows are the open digest windows by window id (the due index's
	// key: type, U+001F, collapse key).
	Windows map[string]*Window `json:"w,omitempty"`
	// Rates are the admission logs by type: unix µs, ascending.
	Rates map[string][]int64 `json:"r,omitempty"`
	// Caps are the daily-cap counters by type.
	Caps map[string]Cap `json:"c,omitempty"`
	// Decisions are the outcomes of the source records not yet known to
	// be committed, sorted by Offset (ascending, no two the same).
	Decisions []Decision `json:"d,omitempty"`
	// SeenIDs are the hashes of the user's last MaxSeen governed event
	// ids, oldest first (seen.go).
	SeenIDs seenRing `json:"s,omitempty"`
}

// Window is an open digest window.
type Window struct {
	N      uint64   `json:"n"`           // its number: the digest is "herald-digest-<N>"
	Type   string   `json:"t"`           // the event type
	Key    string   `json:"k"`           // the collapse key (the type when events had none)
	Opened int64    `json:"o"`           // unix µs of the first folded event's now
	Due    int64    `json:"u"`           // unix µs: Opened + window
	Count  int      `json:"c"`           // events folded
	First  int64    `json:"f"`           // unix µs: earliest CreatedAt folded
	Last   int64    `json:"l"`           // unix µs: latest CreatedAt folded
	IDs    []string `json:"i,omitempty"` // newest MaxWindowIDs event ids, newest first
	Titles []string `json:"h,omitempty"` // newest MaxWindowTitles non-empty titles, newest first
	Body   string   `json:"b,omitempty"` // the newest non-empty body
}

// Cap is a daily-cap counter: Count events delivered on the user's local
// day Day ("2006-01-02").
type Cap struct {
	Day   string `json:"y"`
	Count int    `json:"n"`
}

// Decision is what was decided for one source record (by offset) not yet
// known to be committed.
type Decision struct {
	Offset  int64   `json:"o"`
	Outcome Outcome `json:"d"`
}

// Decode parses an encoded State: nil or empty is an empty state; bytes
// that are not a state this package wrote (bad JSON, more than
// MaxStateBytes, broken invariants such as a nil window or unsorted
// decisions) are an error. Empty maps and slices decode as nil, so that
// Decode(Encode(s)) equals s for every state this package produces.
func Decode(b []byte) (*State, error) {
	s := &State{}
	if len(b) == 0 {
		return s, nil
	}
	if len(b) > MaxStateBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrStateTooLarge, len(b), MaxStateBytes)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("policy: corrupt state: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("policy: corrupt state: %w", err)
	}
	s.tidy()
	return s, nil
}

// check verifies the invariants the rest of the package relies on.
func (s *State) check() error {
	for id, w := range s.Windows {
		switch {
		case w == nil:
			return fmt.Errorf("window %q is null", id)
		case id == "" || w.Type == "" || w.Key == "":
			return fmt.Errorf("window %q has an empty id, type or key", id)
		case w.N == 0 || w.N >= s.NextWindow:
			return fmt.Errorf("window %q has number %d, next is %d", id, w.N, s.NextWindow)
		case w.Count < 1:
			return fmt.Errorf("window %q has count %d", id, w.Count)
		}
	}
	for t, log := range s.Rates {
		if !slices.IsSorted(log) {
			return fmt.Errorf("rate log of %q is not sorted", t)
		}
	}
	for t, c := range s.Caps {
		if c.Count < 0 {
			return fmt.Errorf("cap of %q has count %d", t, c.Count)
		}
	}
	for i, d := range s.Decisions {
		if i > 0 && d.Offset <= s.Decisions[i-1].Offset {
			return errors.New("decisions are not sorted by offset")
		}
		if d.Outcome.Action < Deliver || d.Outcome.Action > Emit {
			return fmt.Errorf("decision of offset %d has action %d", d.Offset, d.Outcome.Action)
		}
	}
	return nil
}

// tidy puts s in its canonical form: empty maps and slices are nil.
func (s *State) tidy() {
	if len(s.Windows) == 0 {
		s.Windows = nil
	}
	for _, w := range s.Windows {
		if len(w.IDs) == 0 {
			w.IDs = nil
		}
		if len(w.Titles) == 0 {
			w.Titles = nil
		}
	}
	for t, log := range s.Rates {
		if len(log) == 0 {
			delete(s.Rates, t)
		}
	}
	if len(s.Rates) == 0 {
		s.Rates = nil
	}
	if len(s.Caps) == 0 {
		s.Caps = nil
	}
	if len(s.Decisions) == 0 {
		s.Decisions = nil
	}
	for i := range s.Decisions {
		if len(s.Decisions[i].Outcome.Closed) == 0 {
			s.Decisions[i].Outcome.Closed = nil
		}
	}
}

// Encode returns the compact JSON of s; an error wrapping
// ErrStateTooLarge if it is more than MaxStateBytes (the store refuses
// it). The caller keeps the state it had: see the package doc.
func (s *State) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("policy: encode state: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxStateBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrStateTooLarge, len(b), MaxStateBytes)
	}
	return b, nil
}

// Empty reports whether s has nothing to keep: no window, rate log, cap
// counter or decision, and no window was ever opened (NextWindow is 0).
// The caller may then delete the stored state instead of writing it.
func (s *State) Empty() bool {
	return s.NextWindow == 0 && len(s.Windows) == 0 && len(s.Rates) == 0 && len(s.Caps) == 0 && len(s.Decisions) == 0 && len(s.SeenIDs) == 0
}

// Decided returns the outcome recorded for the source record at offset.
func (s *State) Decided(offset int64) (Outcome, bool) {
	i, ok := s.findDecision(offset)
	if !ok {
		return Outcome{}, false
	}
	return s.Decisions[i].Outcome, true
}

// Record records o as the outcome of the source record at offset,
// replacing an earlier one. Offsets normally come in increasing order
// (an append); any order keeps Decisions sorted. Due is not kept (it is
// not part of the JSON): a replayed record needs no due entry, the first
// PutPolicy wrote it.
func (s *State) Record(offset int64, o Outcome) {
	o.Due = nil
	if len(o.Closed) == 0 {
		o.Closed = nil
	}
	i, ok := s.findDecision(offset)
	if ok {
		s.Decisions[i].Outcome = o
		return
	}
	s.Decisions = slices.Insert(s.Decisions, i, Decision{Offset: offset, Outcome: o})
}

// Prune drops the decisions of offsets before before (those the caller
// knows are committed: no replay can reach them).
func (s *State) Prune(before int64) {
	i, _ := s.findDecision(before)
	s.Decisions = slices.Delete(s.Decisions, 0, i)
	if len(s.Decisions) == 0 {
		s.Decisions = nil
	}
}

func (s *State) findDecision(offset int64) (int, bool) {
	i := sort.Search(len(s.Decisions), func(i int) bool { return s.Decisions[i].Offset >= offset })
	return i, i < len(s.Decisions) && s.Decisions[i].Offset == offset
}

// Due returns the due entries of the open windows, by At then Key: the
// scanner reads only the due index, never states, so this is how the
// enricher learns from a state alone what must be in the index (to
// rewrite the entries of a state it restores, or to check one).
func (s *State) Due() []Due {
	due := make([]Due, 0, len(s.Windows))
	for id, w := range s.Windows {
		due = append(due, Due{At: fromMicros(w.Due), Key: id})
	}
	slices.SortFunc(due, func(a, b Due) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return due
}

// nextNumber hands out the next window number.
func (s *State) nextNumber() uint64 {
	n := max(s.NextWindow, 1)
	s.NextWindow = n + 1
	return n
}

// approxSize estimates the encoded size of s (strings counted at their
// byte length, unescaped): Apply's guard against growing a state the
// store would refuse.
func (s *State) approxSize() int {
	n := 64
	for id, w := range s.Windows {
		n += 120 + len(id) + len(w.Type) + len(w.Key) + len(w.Body)
		for _, v := range w.IDs {
			n += len(v) + 3
		}
		for _, v := range w.Titles {
			n += len(v) + 3
		}
	}
	for t, log := range s.Rates {
		n += len(t) + 6 + 17*len(log)
	}
	for t := range s.Caps {
		n += len(t) + 30
	}
	for _, d := range s.Decisions {
		n += 40
		for _, c := range d.Outcome.Closed {
			n += 300 + len(c.Event.Title) + len(c.Event.Body) + len(c.Event.Data) + len(c.Event.CollapseKey) + len(c.Event.UserID)
		}
	}
	return n
}

// micros is t in unix µs; fromMicros the inverse, in UTC.
func micros(t time.Time) int64      { return t.UnixMicro() }
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
