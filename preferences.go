package herald

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Preferences are a user's delivery settings. The zero value is not the
// default: use DefaultPreferences (both channels on, nothing muted).
type Preferences struct {
	MutedTypes []string    `json:"muted_types"`
	Channels   Channels    `json:"channels"`
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Timezone is the user's IANA timezone: the local day of daily caps
	// turns at its midnight (quiet hours keep their own timezone). Empty:
	// quiet_hours.timezone, else UTC (see Location).
	Timezone string `json:"timezone,omitempty"`
}

// Channels says where a user's notifications may go.
type Channels struct {
	InApp bool `json:"in_app"`
	Push  bool `json:"push"`
}

// QuietHours is a daily window, in the user's timezone, when normal and low
// priority notifications are not pushed. Start and End are "HH:MM"; a window
// whose End is before its Start spans midnight.
type QuietHours struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	Timezone string `json:"timezone"`
}

// DefaultPreferences are those of a user who never set any.
func DefaultPreferences() Preferences {
	return Preferences{MutedTypes: []string{}, Channels: Channels{InApp: true, Push: true}}
}

// Clone returns a deep copy of p (Validate sorts MutedTypes in place, and
// stores must not keep the caller's slices or pointers).
func (p Preferences) Clone() Preferences {
	p.MutedTypes = slices.Clone(p.MutedTypes)
	if p.MutedTypes == nil {
		p.MutedTypes = []string{}
	}
	if p.QuietHours != nil {
		q := *p.QuietHours
		p.QuietHours = &q
	}
	return p
}

// Validate checks p and normalises it (sorted, deduplicated muted types).
func (p *Preferences) Validate() error {
	if p.MutedTypes == nil {
		p.MutedTypes = []string{}
	}
	if len(p.MutedTypes) > 256 {
		return invalid("muted_types", "has %d entries, more than the 256 allowed", len(p.MutedTypes))
	}
	for i, t := range p.MutedTypes {
		if t == "" || len(t) > MaxTypeLen {
			return invalid(fmt.Sprintf("muted_types[%d]", i), "must be 1-%d characters", MaxTypeLen)
		}
	}
	slices.Sort(p.MutedTypes)
	p.MutedTypes = slices.Compact(p.MutedTypes)
	if p.Timezone != "" {
		if _, err := time.LoadLocation(p.Timezone); err != nil {
			return invalid("timezone", "unknown IANA timezone %q", p.Timezone)
		}
	}
	if q := p.QuietHours; q != nil {
		if _, err := parseClock(q.Start); err != nil {
			return invalid("quiet_hours.start", "must be HH:MM, got %q", q.Start)
		}
		if _, err := parseClock(q.End); err != nil {
			return invalid("quiet_hours.end", "must be HH:MM, got %q", q.End)
		}
		if q.Timezone == "" {
			q.Timezone = "UTC"
		}
		if _, err := time.LoadLocation(q.Timezone); err != nil {
			return invalid("quiet_hours.timezone", "unknown IANA timezone %q", q.Timezone)
		}
	}
	return nil
}

// Location is the user's timezone: Timezone, else the quiet hours'
// timezone, else UTC (also for a name this build cannot load).
func (p *Preferences) Location() *time.Location {
	name := p.Timezone
	if name == "" && p.QuietHours != nil {
		name = p.QuietHours.Timezone
	}
	if name == "" {
		return time.UTC
	}
	if v, ok := locations.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC // not cached: the set of bad names is unbounded
	}
	locations.Store(name, loc)
	return loc
}

// locations caches Location's zones by name: time.LoadLocation reads the
// zone database on every call, and the enricher asks once per user per
// batch. Only names that loaded are kept (bounded by the zone database).
var locations sync.Map

// Muted reports whether events of type t are dropped for this user.
func (p *Preferences) Muted(t string) bool {
	_, found := slices.BinarySearch(p.MutedTypes, t)
	if found {
		return true
	}
	return slices.Contains(p.MutedTypes, t) // tolerate unsorted input
}

// InQuietHours reports whether instant t falls inside the quiet window.
// Invalid windows (which Validate rejects) are treated as no window.
func (p *Preferences) InQuietHours(t time.Time) bool {
	q := p.QuietHours
	if q == nil {
		return false
	}
	start, err1 := parseClock(q.Start)
	end, err2 := parseClock(q.End)
	loc, err3 := time.LoadLocation(q.Timezone)
	if err1 != nil || err2 != nil || err3 != nil || start == end {
		return false
	}
	lt := t.In(loc)
	now := lt.Hour()*60 + lt.Minute()
	if start < end {
		return now >= start && now < end
	}
	return now >= start || now < end // spans midnight
}

// parseClock parses "HH:MM" to minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// PushDecision is what preferences say about pushing one event.
type PushDecision int

// The outcomes of Preferences.Route.
const (
	PushAllowed    PushDecision = iota // may be pushed when the user is offline
	PushDisabled                       // channels.push is false
	PushQuietHours                     // inside quiet hours, not high priority
)

func (d PushDecision) String() string {
	switch d {
	case PushAllowed:
		return "allowed"
	case PushDisabled:
		return "disabled"
	case PushQuietHours:
		return "quiet_hours"
	}
	return "unknown"
}

// ParsePushDecision is the inverse of PushDecision.String; ok is false for
// any other string.
func ParsePushDecision(s string) (d PushDecision, ok bool) {
	switch s {
	case "allowed":
		return PushAllowed, true
	case "disabled":
		return PushDisabled, true
	case "quiet_hours":
		return PushQuietHours, true
	}
	return PushDisabled, false
}

// DropReason says why Route dropped an event; the zero value means it was
// not dropped. String gives the reason label of the
// herald_events_dropped_total metric.
type DropReason int

// The reasons Preferences.Route drops an event.
const (
	NotDropped    DropReason = iota
	DropMuted                // the event's type is muted
	DropNoChannel            // in-app is off and the push decision is not PushAllowed
)

func (r DropReason) String() string {
	switch r {
	case NotDropped:
		return ""
	case DropMuted:
		return "muted"
	case DropNoChannel:
		return "no_channel"
	}
	return "unknown"
}

// Route is the routing decision for one event under preferences p at
// instant now, with its reasons: Dropped says why it was dropped, Push why
// it may or may not be pushed.
type Route struct {
	Drop    bool       // neither stored nor pushed
	Dropped DropReason // why Drop is set; NotDropped otherwise
	InApp   bool       // store in the inbox and deliver live
	Push    PushDecision
}

// Route decides what happens to e for this user at instant now.
func (p *Preferences) Route(e *Event, now time.Time) Route {
	if p.Muted(e.Type) {
		return Route{Drop: true, Dropped: DropMuted, Push: PushDisabled}
	}
	r := Route{InApp: p.Channels.InApp, Push: PushAllowed}
	switch {
	case !p.Channels.Push:
		r.Push = PushDisabled
	case e.Priority != PriorityHigh && p.InQuietHours(now):
		r.Push = PushQuietHours
	}
	if !r.InApp && r.Push != PushAllowed {
		r.Drop, r.Dropped = true, DropNoChannel
	}
	return r
}
