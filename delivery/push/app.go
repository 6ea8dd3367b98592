package push

import (
	"errors"
	"fmt"
	"net/url"
)

// App is one app's push credentials, selected by a device's app_id. An app
// has APNs credentials, FCM credentials or both (iOS devices go to APNs
// when the app has them, else through FCM; Android devices go to FCM).
type App struct {
	// ID is the app_id devices register with. Required, unique.
	ID string `yaml:"id"`
	// APNs: nil means the app sends no pushes through Apple directly.
	APNs *APNsApp `yaml:"apns,omitempty"`
	// FCM: nil means the app sends no pushes through Firebase.
	FCM *FCMApp `yaml:"fcm,omitempty"`
}

// APNs endpoints by name; any other value of APNsApp.Endpoint is a URL.
const (
	APNsProduction = "production"
	APNsSandbox    = "sandbox"
)

// APNsApp is an app's APNs token-auth credentials.
type APNsApp struct {
	// KeyFile is the path of the .p8 signing key from Apple's developer
	// portal. Required unless Key is set.
	KeyFile string `yaml:"key_file"`
	// Key is the PEM of the .p8 key, for in-process use (herald dev, tests);
	// it takes precedence over KeyFile. Not read from YAML.
	Key []byte `yaml:"-"`
	// KeyID is the 10-character id of that key. Required.
	KeyID string `yaml:"key_id"`
	// TeamID is the Apple developer team id. Required.
	TeamID string `yaml:"team_id"`
	// Topic is the app's bundle id (apns-topic). Required.
	Topic string `yaml:"topic"`
	// Endpoint is "production", "sandbox", or an https URL (a local fake).
	// Empty means production.
	Endpoint string `yaml:"endpoint"`
	// CAFile is the path of PEM certificates to trust for the endpoint
	// instead of the system roots (for fakes). Empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CA is the PEM form of CAFile for in-process use; it takes precedence.
	// Not read from YAML.
	CA []byte `yaml:"-"`
}

// FCMApp is an app's Firebase Cloud Messaging (HTTP v1) credentials.
type FCMApp struct {
	// CredentialsFile is the path of the service-account JSON key. Its
	// token_uri is where OAuth2 tokens are fetched (a fake's, in tests).
	// Required unless Credentials is set.
	CredentialsFile string `yaml:"credentials_file"`
	// Credentials is the service-account JSON for in-process use; it takes
	// precedence over CredentialsFile. Not read from YAML.
	Credentials []byte `yaml:"-"`
	// ProjectID is the Firebase project; empty means the project_id of the
	// service-account JSON.
	ProjectID string `yaml:"project_id"`
	// Endpoint is the base URL of the FCM API, without "/v1" (a local
	// fake); empty means https://fcm.googleapis.com.
	Endpoint string `yaml:"endpoint"`
	// CAFile is the path of PEM certificates to trust for the endpoint and
	// the token_uri (for fakes); empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CA is the PEM form of CAFile for in-process use; it takes precedence.
	// Not read from YAML.
	CA []byte `yaml:"-"`
}

// Validate checks one app; errors name the field, as
// "push.apps[ID].apns.key_id".
func (a *App) Validate() error {
	p := fmt.Sprintf("push.apps[%s]", a.ID)
	switch {
	case a.ID == "":
		return errors.New("push.apps[].id: is required")
	case len(a.ID) > 256:
		return fmt.Errorf("%s.id: is longer than 256 bytes (the longest app_id a device can register)", p)
	case a.APNs == nil && a.FCM == nil:
		return fmt.Errorf("%s: needs apns or fcm credentials (or both)", p)
	}
	if a.APNs != nil {
		if err := a.APNs.Validate(); err != nil {
			return fmt.Errorf("%s.apns.%w", p, err)
		}
	}
	if a.FCM != nil {
		if err := a.FCM.Validate(); err != nil {
			return fmt.Errorf("%s.fcm.%w", p, err)
		}
	}
	return nil
}

// Validate checks APNs credentials; errors start with the field's YAML
// key, as "key_id: is required".
func (c *APNsApp) Validate() error {
	switch {
	case c.KeyFile == "" && len(c.Key) == 0:
		return errors.New("key_file: is required")
	case c.KeyID == "":
		return errors.New("key_id: is required")
	case c.TeamID == "":
		return errors.New("team_id: is required")
	case c.Topic == "":
		return errors.New("topic: is required (the app's bundle id)")
	}
	switch c.Endpoint {
	case "", APNsProduction, APNsSandbox:
	default:
		if err := checkURL(c.Endpoint, true); err != nil {
			return fmt.Errorf("endpoint: must be production, sandbox or an https URL: %w", err)
		}
	}
	return nil
}

// Validate checks FCM credentials; errors start with the field's YAML
// key, as "credentials_file: is required".
func (c *FCMApp) Validate() error {
	if c.CredentialsFile == "" && len(c.Credentials) == 0 {
		return errors.New("credentials_file: is required")
	}
	if c.Endpoint != "" {
		if err := checkURL(c.Endpoint, false); err != nil {
			return fmt.Errorf("endpoint: must be an http(s) URL: %w", err)
		}
	}
	return nil
}

func checkURL(s string, httpsOnly bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.Scheme != "https" && (httpsOnly || u.Scheme != "http") {
		return fmt.Errorf("%q: scheme %q", s, u.Scheme)
	}
	return nil
}

// ValidateApps checks every app and that their ids are unique.
func ValidateApps(apps []App) error {
	seen := make(map[string]bool, len(apps))
	for i := range apps {
		if err := apps[i].Validate(); err != nil {
			return err
		}
		if seen[apps[i].ID] {
			return fmt.Errorf("push.apps[%s].id: is declared twice", apps[i].ID)
		}
		seen[apps[i].ID] = true
	}
	return nil
}
