package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// value is a typed setting bound to a field of a Config. Set parses the
// text form used by flags, environment variables and YAML scalars alike,
// so a value is read the same way wherever it comes from.
type value interface {
	Set(s string) error
	String() string
	kind() string
}

// Parse errors: short, so that the caller can prefix the source
// ($HERALD_X="…", --x, or the file key).
var (
	errNumber   = errors.New("not a whole number")
	errFloat    = errors.New("not a number")
	errDuration = errors.New("not a duration (e.g. 30s)")
	errBool     = errors.New("not a boolean (true or false)")
)

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (stringValue) kind() string { return "string" }

type listValue struct{ p *[]string }

func (v listValue) Set(s string) error { *v.p = SplitList(s); return nil }
func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (listValue) kind() string { return "list" }

type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errNumber
	}
	*v.p = n
	return nil
}
func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (intValue) kind() string { return "int" }

type floatValue struct{ p *float64 }

func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errFloat
	}
	*v.p = f
	return nil
}
func (v floatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}
func (floatValue) kind() string { return "number" }

type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errDuration
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}
func (durationValue) kind() string { return "duration" }

type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errBool
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (boolValue) kind() string { return "bool" }

// IsBoolFlag lets `--kafka-tls` stand for `--kafka-tls=true`.
func (boolValue) IsBoolFlag() bool { return true }

// SplitList splits a comma-separated list, trimming items and dropping
// empty ones.
func SplitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Limit is a rate with bursts of twice it (at least 1); 0 or less is no
// limit.
func Limit(perSecond float64) (rate float64, burst int) {
	if perSecond <= 0 {
		return 0, 0
	}
	return perSecond, max(1, int(2*perSecond))
}
