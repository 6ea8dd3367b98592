package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// APIKeys is the set of upstream API keys. It is immutable and safe for
// concurrent use.
type APIKeys struct {
	// digests of the keys: comparing fixed-size hashes keeps the check's
	// time independent of the keys' lengths and contents.
	digests [][sha256.Size]byte
}

// NewAPIKeys returns the set of keys; an empty key is an error. An empty set
// refuses every key.
func NewAPIKeys(keys ...string) (*APIKeys, error) {
	k := &APIKeys{}
	for i, key := range keys {
		if key == "" {
			return nil, fmt.Errorf("auth: API key %d is empty", i)
		}
		k.digests = append(k.digests, sha256.Sum256([]byte(key)))
	}
	return k, nil
}

// Valid reports whether key is one of the set. It compares against every key
// in constant time, whichever matches.
func (k *APIKeys) Valid(key string) bool {
	if k == nil || key == "" {
		return false
	}
	d := sha256.Sum256([]byte(key))
	match := 0
	for i := range k.digests {
		match |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return match == 1
}

// Len is the number of keys.
func (k *APIKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.digests)
}
