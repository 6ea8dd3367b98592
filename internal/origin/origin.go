// Package origin decides which browser origins may call Herald: the one
// matcher behind the API's CORS headers and the gateway's WebSocket origin
// check, so that an origin one accepts the other accepts too.
//
// A configured entry is one of:
//   - "*": any origin;
//   - "scheme://host[:port]": that exact origin (scheme, host and port;
//     the scheme's default port may be written or left out);
//   - "host[:port]": that host on any scheme, on that port, or on the
//     scheme's default port (80, 443) when none is given.
//
// Hosts and schemes compare case-insensitively, as browsers serialise them
// in lower case; a trailing slash is ignored. An Origin header of "null"
// (sandboxed frames, file: pages) matches only "*".
package origin

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Matcher holds a parsed list of allowed origins. The zero value allows
// nothing explicitly; see AllowedFor for the same-host default. It is
// immutable and safe for concurrent use.
type Matcher struct {
	any     bool
	exact   map[string]bool // "scheme://host:port", port always present
	anyHost map[string]bool // "host:port", or "host" for the default port; any scheme
	n       int
}

// Parse validates and parses the configured origins. An invalid entry is an
// error naming it.
func Parse(origins []string) (*Matcher, error) {
	m := &Matcher{exact: map[string]bool{}, anyHost: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		m.n++
		if o == "*" {
			m.any = true
			continue
		}
		o = strings.TrimRight(strings.ToLower(o), "/")
		if strings.Contains(o, "://") {
			key, err := canonical(o)
			if err != nil {
				return nil, fmt.Errorf("origin %q: %w", o, err)
			}
			m.exact[key] = true
			continue
		}
		if strings.ContainsAny(o, "/?#@ ") {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port], host[:port] or *", o)
		}
		host, port, err := net.SplitHostPort(o)
		switch {
		case err != nil && strings.Contains(o, ":") && !strings.HasPrefix(o, "["):
			return nil, fmt.Errorf("origin %q: %w", o, err)
		case err != nil:
			m.anyHost[strings.Trim(o, "[]")] = true // no port: the default one
		case host == "" || port == "":
			return nil, fmt.Errorf("origin %q: want host[:port]", o)
		default:
			m.anyHost[net.JoinHostPort(host, port)] = true
		}
	}
	return m, nil
}

// MustParse is Parse for origins known to be valid (tests, constants).
func MustParse(origins ...string) *Matcher {
	m, err := Parse(origins)
	if err != nil {
		panic(err)
	}
	return m
}

// Configured reports whether any origin was configured.
func (m *Matcher) Configured() bool { return m != nil && m.n > 0 }

// Any reports whether "*" was configured.
func (m *Matcher) Any() bool { return m != nil && m.any }

// Match reports whether the Origin header value origin is in the configured
// list. An empty origin never matches.
func (m *Matcher) Match(origin string) bool {
	if m == nil || origin == "" {
		return false
	}
	if m.any {
		return true
	}
	key, err := canonical(strings.ToLower(origin))
	if err != nil {
		return false
	}
	if m.exact[key] {
		return true
	}
	i := strings.Index(key, "://")
	scheme, hostport := key[:i], key[i+3:]
	if m.anyHost[hostport] {
		return true
	}
	host, port, _ := net.SplitHostPort(hostport)
	return port == defaultPort(scheme) && m.anyHost[host]
}

// AllowedFor is the WebSocket rule: a request without an Origin header (not
// a browser) is allowed; with none configured, only an origin whose host
// (and port) is the request's own Host; otherwise Match.
func (m *Matcher) AllowedFor(origin, requestHost string) bool {
	if origin == "" {
		return true
	}
	if m.Configured() {
		return m.Match(origin)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, requestHost)
}

// canonical returns "scheme://host:port" for an origin with an http(s) or
// ws(s) scheme, filling in the scheme's default port.
func canonical(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("want scheme://host[:port]")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("an origin has no path, query, fragment or user")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
		if port == "" {
			return "", fmt.Errorf("scheme %q has no default port: give one", u.Scheme)
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port), nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}
