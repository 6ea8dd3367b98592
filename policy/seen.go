package policy

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
)

// Upstream duplicates. A producer that retries sends an event id twice as
// two records; a replayed record is not that (its recorded decision
// covers it), but a second record with the same id must not be folded
// into a digest twice or take a second rate or cap slot. The enricher
// deduplicates ordinary events in the inbox, which governed events may
// never reach; a per-event claim in the store would cost a conditional
// write per governed event (the first build did that: a fifth of the
// throughput on Cassandra). So the state keeps the ids of the user's
// last MaxSeen governed events, as 64-bit FNV-1a hashes, and Seen finds a
// duplicate among them. A duplicate that arrives after MaxSeen newer
// governed events of its user is not recognised (it counts again); a
// hash collision between two ids of one user (odds about MaxSeen/2^64)
// would take the second for a duplicate.

// MaxSeen is how many of a user's latest governed event ids the state
// remembers for deduplication.
const MaxSeen = 512

// seenRing holds event id hashes, oldest first; JSON: one base64 string
// of little-endian uint64s (12 bytes per id instead of 20 as numbers).
type seenRing []uint64

func (r seenRing) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(r))
	for i, h := range r {
		binary.LittleEndian.PutUint64(b[8*i:], h)
	}
	return json.Marshal(base64.RawStdEncoding.EncodeToString(b))
}

func (r *seenRing) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("seen ids: %w", err)
	}
	if len(b)%8 != 0 || len(b)/8 > MaxSeen {
		return fmt.Errorf("seen ids: %d bytes is not a whole number of at most %d ids", len(b), MaxSeen)
	}
	out := make(seenRing, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	*r = out
	return nil
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// Seen reports whether event id is among the user's last MaxSeen governed
// events (recorded with See).
func (s *State) Seen(id string) bool { return slices.Contains(s.SeenIDs, idHash(id)) }

// See records event id as governed, forgetting the oldest beyond MaxSeen.
func (s *State) See(id string) {
	s.SeenIDs = append(s.SeenIDs, idHash(id))
	if over := len(s.SeenIDs) - MaxSeen; over > 0 {
		s.SeenIDs = slices.Delete(s.SeenIDs, 0, over)
	}
}
