package pushfake

import (
	"hash/maphash"
	"strings"
	"sync"
)

// Behaviour is what a fake does with a device token, chosen by its prefix.
type Behaviour int

// The behaviours, with the prefix that selects each. Any other token is
// delivered (200).
const (
	// Deliver: 200. Any token without one of the prefixes below.
	Deliver Behaviour = iota
	// Unregistered ("unregistered-…"): APNs 410 Unregistered with a
	// timestamp; FCM 404 NOT_FOUND / UNREGISTERED.
	Unregistered
	// BadToken ("bad-…"): APNs 400 BadDeviceToken; FCM 400
	// INVALID_ARGUMENT on message.token.
	BadToken
	// Flaky ("flaky-…"): the first attempt of a given notification (APNs:
	// token + apns-id, or + payload when apns-id is absent; FCM: token +
	// request body) answers 503 with Retry-After: 1 (APNs
	// ServiceUnavailable; FCM UNAVAILABLE), every later one 200.
	Flaky
	// Down ("down-…"): always 500 (APNs InternalServerError; FCM
	// INTERNAL).
	Down
	// Mismatch ("mismatch-…"): the token belongs to another app: APNs 400
	// DeviceTokenNotForTopic; FCM 403 PERMISSION_DENIED / SENDER_ID_MISMATCH.
	Mismatch
	// Throttled ("throttled-…"): APNs 429 TooManyRequests; FCM 429
	// RESOURCE_EXHAUSTED / QUOTA_EXCEEDED, both with Retry-After: 1.
	Throttled
)

var prefixes = [...]struct {
	prefix string
	b      Behaviour
}{
	{"unregistered-", Unregistered},
	{"bad-", BadToken},
	{"flaky-", Flaky},
	{"down-", Down},
	{"mismatch-", Mismatch},
	{"throttled-", Throttled},
}

// BehaviourOf returns what the fakes do with token and whether the token
// carries one of the test prefixes.
func BehaviourOf(token string) (Behaviour, bool) {
	for _, p := range prefixes {
		if strings.HasPrefix(token, p.prefix) {
			return p.b, true
		}
	}
	return Deliver, false
}

// maxTokenLen bounds a device token (Apple's are 64 hex digits today and
// may grow; FCM registration tokens are about 160 characters).
const maxTokenLen = 512

// tokenOK reports whether token is acceptable: strict accepts hex (an even
// number of digits, at least 16) or a test-prefixed token, as Apple accepts
// only hex; otherwise any token of letters, digits and -_.:~ is accepted.
func tokenOK(token string, strict bool) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	_, prefixed := BehaviourOf(token)
	if strict && !prefixed {
		if len(token) < 16 || len(token)%2 != 0 {
			return false
		}
		for i := 0; i < len(token); i++ {
			if !isHex(token[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(token); i++ {
		if !isTokenChar(token[i]) {
			return false
		}
	}
	return true
}

// maxFlakySeen bounds the memory of first attempts; past it the set starts
// over (a notification may then fail once more, which a flaky token allows).
const maxFlakySeen = 100000

// flakySet remembers which notifications to flaky tokens were attempted.
type flakySet struct {
	mu   sync.Mutex
	seed maphash.Seed
	seen map[uint64]struct{}
}

func newFlakySet() *flakySet {
	return &flakySet{seed: maphash.MakeSeed(), seen: make(map[uint64]struct{})}
}

// first reports whether this is the first attempt of (token, key), and
// remembers it.
func (f *flakySet) first(token string, key []byte) bool {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(token)
	h.WriteByte(0)
	h.Write(key)
	sum := h.Sum64()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seen[sum]; ok {
		return false
	}
	if len(f.seen) >= maxFlakySeen {
		clear(f.seen)
	}
	f.seen[sum] = struct{}{}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '~'
}
