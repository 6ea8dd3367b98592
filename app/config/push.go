package config

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/heraldhq/herald/delivery/push"
)

// Push is the push: section of the --config file: the apps whose devices
// the pusher serves, the app a registration without app_id gets, the
// per-type push delay and the retry policy. It has no flags or environment
// variables (credentials are files, one set per app). Decoded strictly: an
// unknown key is an error naming it.
type Push struct {
	// Apps are the apps a device's app_id selects, each with APNs and/or
	// FCM credentials; validated at start (errors name the app and field,
	// as "push.apps[com.example].apns.key_id: is required"). None: every
	// push ends in the dead-letter topic with reason UnknownApp.
	Apps []push.App `yaml:"apps"`
	// DefaultApp is the app_id of a POST /v1/devices that omits it; it
	// must be one of Apps when Apps are declared. "": app_id is required
	// (herald dev: "dev", its own app).
	DefaultApp string `yaml:"default_app"`
	// Delay is the push delay per event type: a push of that type waits
	// this long and is sent only if the notification is still unread. An
	// absent type has none.
	Delay map[string]time.Duration `yaml:"delay"`
	// Retry is the backoff of transient failures; zero fields take
	// DefaultPushRetry (herald dev: DevPushRetry).
	Retry PushRetry `yaml:"retry"`
}

// PushRetry is the retry policy of one push job to one device:
// exponential backoff with full jitter, a Retry-After as a floor, a
// bounded number of attempts, never past the notification's ttl.
type PushRetry struct {
	// Base is the ceiling of the first retry's delay.
	Base time.Duration `yaml:"base"`
	// Cap bounds every delay's ceiling (a Retry-After may exceed it).
	Cap time.Duration `yaml:"cap"`
	// MaxAttempts bounds the sends of one job to one device, the first
	// included; past it the job goes to the dead-letter topic.
	MaxAttempts int `yaml:"max_attempts"`
}

// Retry policies: production spreads a provider's hiccup over minutes;
// herald dev gives every path away within about 30 seconds (at most
// 0.5+1+2+4×4 = 19.5 s of backoff over 8 attempts, plus any Retry-After).
var (
	DefaultPushRetry = PushRetry{Base: time.Second, Cap: 10 * time.Minute, MaxAttempts: 10}
	DevPushRetry     = PushRetry{Base: 500 * time.Millisecond, Cap: 4 * time.Second, MaxAttempts: 8}
)

// DevApp is the app_id of herald dev's own app, whose credentials are
// those of the in-process fake providers.
const DevApp = "dev"

// Backoff is r as the pusher's backoff.
func (r PushRetry) Backoff() push.Backoff {
	return push.Backoff{Base: r.Base, Cap: r.Cap, MaxAttempts: r.MaxAttempts}
}

// PushSettings returns the push section with its defaults filled in: the
// retry policy of the role (herald dev's is short) for the fields the
// file leaves zero. The result shares no slices or maps with c.
func (c *Config) PushSettings() Push {
	var p Push
	if c.Sections.Push != nil {
		p = *c.Sections.Push
	}
	p.Apps = append([]push.App(nil), p.Apps...)
	delay := make(map[string]time.Duration, len(p.Delay))
	for k, v := range p.Delay {
		delay[k] = v
	}
	p.Delay = delay
	def := DefaultPushRetry
	if c.Role == "dev" {
		def = DevPushRetry
	}
	if p.Retry.Base == 0 {
		p.Retry.Base = def.Base
	}
	if p.Retry.Cap == 0 {
		p.Retry.Cap = max(def.Cap, p.Retry.Base)
	}
	if p.Retry.MaxAttempts == 0 {
		p.Retry.MaxAttempts = def.MaxAttempts
	}
	return p
}

// Validate checks the push section; errors name the key, as
// "push.apps[ID].fcm.credentials_file: is required" or
// "push.delay[mention]: -1s: must be 0 or more". It reads no file: the
// credentials are loaded, and their errors reported, when the pusher
// starts.
func (p *Push) Validate() error {
	var errs []error
	if err := push.ValidateApps(p.Apps); err != nil {
		errs = append(errs, err)
	}
	if p.DefaultApp != "" {
		if len(p.DefaultApp) > 256 {
			errs = append(errs, errors.New("push.default_app: is longer than 256 bytes (the longest app_id a device can register)"))
		} else if len(p.Apps) > 0 && !hasApp(p.Apps, p.DefaultApp) {
			errs = append(errs, fmt.Errorf("push.default_app: %q is not an app of push.apps", p.DefaultApp))
		}
	}
	types := make([]string, 0, len(p.Delay))
	for t := range p.Delay {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		switch d := p.Delay[t]; {
		case t == "":
			errs = append(errs, errors.New("push.delay: an event type is empty"))
		case d < 0:
			errs = append(errs, fmt.Errorf("push.delay[%s]: %s: must be 0 or more", t, d))
		}
	}
	r := p.Retry
	if r.Base < 0 {
		errs = append(errs, fmt.Errorf("push.retry.base: %s: must be positive (absent: the default)", r.Base))
	}
	if r.Cap < 0 || (r.Cap > 0 && r.Cap < r.Base) {
		errs = append(errs, fmt.Errorf("push.retry.cap: %s: must be at least push.retry.base (%s)", r.Cap, r.Base))
	}
	if r.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("push.retry.max_attempts: %d: must be at least 1 (absent: the default)", r.MaxAttempts))
	}
	return errors.Join(errs...)
}

func hasApp(apps []push.App, id string) bool {
	for i := range apps {
		if apps[i].ID == id {
			return true
		}
	}
	return false
}
