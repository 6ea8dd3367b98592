package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	herald "github.com/heraldhq/herald"
	"go.yaml.in/yaml/v3"
)

// Bounds of a Config.
const (
	MinWindow   = time.Second        // smallest digest.window and rate.per
	MaxWindow   = 7 * 24 * time.Hour // largest digest.window and rate.per
	MaxLimit    = 1000               // largest rate.limit
	MaxDailyCap = 10000              // largest daily_cap
)

// Config is the policy: section of --config (decoded strictly by
// app/config with yaml.v3 KnownFields). Types maps an event type to its
// rules; a type without an entry is not governed.
type Config struct {
	Types map[string]TypePolicy `yaml:"types" json:"types"`
}

// TypePolicy is the rules of one event type. At least one must be set.
type TypePolicy struct {
	Digest *Digest `yaml:"digest,omitempty" json:"digest,omitempty"`
	Rate   *Rate   `yaml:"rate,omitempty" json:"rate,omitempty"`
	// DailyCap bounds the events (and digests) of the type delivered per
	// local day of the user: 0 = no cap; 1..MaxDailyCap.
	DailyCap int `yaml:"daily_cap,omitempty" json:"daily_cap,omitempty"`
}

// Digest folds the events of a type into one notification per window.
type Digest struct {
	// Window is how long a digest window stays open after its first
	// event: MinWindow..MaxWindow, required.
	Window Duration `yaml:"window" json:"window"`
	// Title is the digest's title template, with the placeholders
	// {newest}, {count} and {others}; "" is the default ("{newest}" for a
	// single event, else "{newest} and {others} more"). A "{" always
	// starts a placeholder.
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
}

// Rate limits the events of a type admitted per sliding window.
type Rate struct {
	Limit int      `yaml:"limit" json:"limit"` // 1..MaxLimit
	Per   Duration `yaml:"per" json:"per"`     // MinWindow..MaxWindow
	// Excess is what happens to an event over the limit: "drop" (the
	// default, also for "") or "digest" (folded into the type's digest).
	Excess string `yaml:"excess,omitempty" json:"excess,omitempty"`
}

// The values of Rate.Excess.
const (
	ExcessDrop   = "drop"
	ExcessDigest = "digest"
)

// Duration is a time.Duration written as "5m", "1h30m"
// (time.ParseDuration) or "2d" (a whole number of days), in YAML and JSON.
type Duration time.Duration

// ParseDuration parses s as a Duration: "<n>d" is n days, anything else is
// time.ParseDuration's syntax.
func ParseDuration(s string) (Duration, error) {
	if digits, ok := strings.CutSuffix(s, "d"); ok && digits != "" && strings.Trim(digits, "0123456789") == "" {
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("duration %q is out of range", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30s, 5m, 1h30m or 2d", s)
	}
	return Duration(d), nil
}

// String writes d as ParseDuration reads it: "2d" for whole days, else
// time.Duration's form.
func (d Duration) String() string {
	const day = 24 * time.Hour
	if td := time.Duration(d); td > 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// UnmarshalYAML reads a scalar such as 5m or 2d.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string such as 5m, 1h30m or 2d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML writes d as its String.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a JSON string, its String.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string such as "5m" or "2d".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration must be a string such as 5m, 1h30m or 2d")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// validType is the event type rule of the root package (DecodeEvent's
// "type": 1..herald.MaxTypeLen characters of valid UTF-8; the root package
// has no exported validator, so it is repeated here), plus one rule of
// this package: no U+001F, the separator of window ids.
func validType(t string) bool {
	return t != "" && utf8.ValidString(t) && utf8.RuneCountInString(t) <= herald.MaxTypeLen &&
		!strings.ContainsRune(t, keySep)
}

// Validate checks c, naming the field in a *herald.ValidationError:
// "policy.types" for a type name that is not a valid event type,
// "policy.types.like" for a type with no rule,
// "policy.types.like.digest.window" and so on. Title templates are
// checked too (an unknown placeholder is an error). Types are checked in
// sorted order, so the error reported is always the same one.
func (c *Config) Validate() error {
	names := make([]string, 0, len(c.Types))
	for t := range c.Types {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		if !validType(t) {
			return invalid("policy.types", fmt.Sprintf("%q is not a valid event type (1-%d characters of UTF-8, no U+001F)", t, herald.MaxTypeLen))
		}
		if err := c.Types[t].validate("policy.types." + t); err != nil {
			return err
		}
	}
	return nil
}

func (tp TypePolicy) validate(field string) error {
	if tp.Digest == nil && tp.Rate == nil && tp.DailyCap == 0 {
		return invalid(field, "has no rule (digest, rate or daily_cap)")
	}
	if tp.DailyCap < 0 || tp.DailyCap > MaxDailyCap {
		return invalid(field+".daily_cap", fmt.Sprintf("must be between 0 and %d", MaxDailyCap))
	}
	if d := tp.Digest; d != nil {
		if !inWindowRange(d.Window) {
			return invalid(field+".digest.window", windowReason)
		}
		if _, err := compileTitle(d.Title); err != nil {
			return invalid(field+".digest.title", err.Error())
		}
	}
	if r := tp.Rate; r != nil {
		if r.Limit < 1 || r.Limit > MaxLimit {
			return invalid(field+".rate.limit", fmt.Sprintf("must be between 1 and %d", MaxLimit))
		}
		if !inWindowRange(r.Per) {
			return invalid(field+".rate.per", windowReason)
		}
		switch r.Excess {
		case "", ExcessDrop, ExcessDigest:
		default:
			return invalid(field+".rate.excess", "excess must be drop or digest")
		}
	}
	return nil
}

const windowReason = "must be between 1s and 168h"

func inWindowRange(d Duration) bool {
	return time.Duration(d) >= MinWindow && time.Duration(d) <= MaxWindow
}

func invalid(field, reason string) *herald.ValidationError {
	return &herald.ValidationError{Field: field, Reason: reason}
}

// A title template compiled: literal text and placeholders in order.
type titleTemplate []titlePart

type titlePart struct {
	lit string
	ph  placeholder // 0: lit
}

type placeholder uint8

const (
	phNone placeholder = iota
	phNewest
	phCount
	phOthers
)

var placeholders = map[string]placeholder{"newest": phNewest, "count": phCount, "others": phOthers}

// compileTitle parses a template; "" compiles to nil (the default).
func compileTitle(s string) (titleTemplate, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > herald.MaxTitleLen {
		return nil, fmt.Errorf("is %d characters, more than the %d allowed", n, herald.MaxTitleLen)
	}
	var t titleTemplate
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t = append(t, titlePart{lit: s})
			break
		}
		if i > 0 {
			t = append(t, titlePart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed placeholder %s", s[i:])
		}
		name := s[i+1 : i+j]
		ph, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {%s}", name)
		}
		t = append(t, titlePart{ph: ph})
		s = s[i+j+1:]
	}
	return t, nil
}

var (
	defaultSingle = titleTemplate{{ph: phNewest}}
	defaultMany   = titleTemplate{{ph: phNewest}, {lit: " and "}, {ph: phOthers}, {lit: " more"}}
)

// render applies t (nil: the default) and cuts the result to
// herald.MaxTitleLen characters.
func (t titleTemplate) render(newest string, count int) string {
	if t == nil {
		t = defaultMany
		if count == 1 {
			t = defaultSingle
		}
	}
	var sb strings.Builder
	for _, p := range t {
		switch p.ph {
		case phNone:
			sb.WriteString(p.lit)
		case phNewest:
			sb.WriteString(newest)
		case phCount:
			sb.WriteString(strconv.Itoa(count))
		case phOthers:
			sb.WriteString(strconv.Itoa(count - 1))
		}
	}
	return cutChars(sb.String(), herald.MaxTitleLen)
}

// cutChars returns the first n characters of s.
func cutChars(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
