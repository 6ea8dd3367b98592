package cassandra

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// The ring: which host coordinates a user's inbox writes, so that one
// Append can put several users' parts into one request without making its
// coordinator forward them (doc.go, "Several users per request").
//
// The driver routes a request token-aware (to the replicas of the first
// statement's partition, in ring order, local datacenter first, not
// shuffled: cassandra.go), but does not say which host that is. ring
// computes the same answer from the hosts' tokens: the first host of the
// local datacenter clockwise from the partition's token, which is a
// replica under SimpleStrategy and NetworkTopologyStrategy alike. Users
// with the same owner go in one batch, whose first statement routes it to
// that owner; each partition's mutation is then written by a replica of
// it, as a single-user batch would be.

// ringRefresh is how long a computed ring is used before the hosts are read
// again (a host added or moved; until then its users are grouped by the
// old ring, which costs a forwarding hop, never correctness).
const ringRefresh = 10 * time.Second

// ring maps a partition token to the owning host's index.
type ring struct {
	tokens []int64 // sorted
	owners []int   // owners[i] owns (tokens[i-1], tokens[i]]
	hosts  int
}

// owner returns the owning host of a token: 0 when the ring has one host.
func (r *ring) owner(token int64) int {
	if r.hosts <= 1 {
		return 0
	}
	i, _ := slices.BinarySearch(r.tokens, token)
	if i == len(r.tokens) {
		i = 0
	}
	return r.owners[i]
}

// ringCache keeps the Store's current ring.
type ringCache struct {
	mu    sync.Mutex
	r     *ring // nil: groups by user (no ring known)
	at    time.Time
	read  func() []hostTokens
	local string // Config.LocalDC; "" every host
}

// hostTokens is what the ring needs of a host.
type hostTokens struct {
	dc     string
	tokens []string
}

// sessionHosts reads the hosts the driver knows.
func sessionHosts(s *gocql.Session) func() []hostTokens {
	return func() []hostTokens {
		hs := s.GetHosts()
		out := make([]hostTokens, 0, len(hs))
		for _, h := range hs {
			out = append(out, hostTokens{dc: h.DataCenter(), tokens: h.Tokens()})
		}
		return out
	}
}

// get returns the current ring, reading the hosts again past ringRefresh;
// nil when no usable ring is known (no tokens, another partitioner).
func (c *ringCache) get(now time.Time) *ring {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= ringRefresh {
		c.r, c.at = buildRing(c.read(), c.local), now
	}
	return c.r
}

// buildRing builds the ring of the hosts in dc ("" all): nil when a host
// has no tokens or a token is not a Murmur3 one (a signed 64-bit integer).
func buildRing(hosts []hostTokens, dc string) *ring {
	type tok struct {
		t     int64
		owner int
	}
	var toks []tok
	n := 0
	for _, h := range hosts {
		if dc != "" && h.dc != dc {
			continue
		}
		ts := h.tokens
		if len(ts) == 0 {
			return nil
		}
		for _, s := range ts {
			t, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil
			}
			toks = append(toks, tok{t, n})
		}
		n++
	}
	if n == 0 {
		return nil
	}
	slices.SortFunc(toks, func(a, b tok) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	r := &ring{hosts: n, tokens: make([]int64, len(toks)), owners: make([]int, len(toks))}
	for i, t := range toks {
		r.tokens[i], r.owners[i] = t.t, t.owner
	}
	return r
}

// murmur3Token is Murmur3Partitioner's token of a partition key: the first
// half of MurmurHash3 x64_128 (seed 0) as Cassandra computes it, whose
// tail bytes are sign-extended (a byte above 0x7f counts as negative, a
// quirk of its Java port kept for compatibility), with math.MinInt64
// mapped to math.MaxInt64.
func murmur3Token(key []byte) int64 {
	var h1, h2 uint64
	n := len(key)
	nblocks := n / 16
	for i := range nblocks {
		h1 ^= mixK1(binary.LittleEndian.Uint64(key[i*16:]))
		h1 = bits.RotateLeft64(h1, 27)
		h1 += h2
		h1 = h1*5 + 0x52dce729
		h2 ^= mixK2(binary.LittleEndian.Uint64(key[i*16+8:]))
		h2 = bits.RotateLeft64(h2, 31)
		h2 += h1
		h2 = h2*5 + 0x38495ab5
	}
	tail := key[nblocks*16:]
	// b is a tail byte sign-extended to 64 bits, as Java's (long) of a byte.
	b := func(i int) uint64 { return uint64(int64(int8(tail[i]))) }
	var k1, k2 uint64
	for i := len(tail) - 1; i >= 8; i-- {
		k2 ^= b(i) << (8 * (i - 8))
	}
	if len(tail) > 8 {
		h2 ^= mixK2(k2)
	}
	for i := min(len(tail), 8) - 1; i >= 0; i-- {
		k1 ^= b(i) << (8 * i)
	}
	if len(tail) > 0 {
		h1 ^= mixK1(k1)
	}
	h1 ^= uint64(n)
	h2 ^= uint64(n)
	h1 += h2
	h2 += h1
	h1 = fmix64(h1)
	h2 = fmix64(h2)
	h1 += h2
	t := int64(h1)
	if t == math.MinInt64 {
		return math.MaxInt64
	}
	return t
}

const (
	murmurC1 = 0x87c37b91114253d5
	murmurC2 = 0x4cf5ad432745937f
)

// mixK1 and mixK2 scramble the first and second 64-bit lane of a block.
func mixK1(k uint64) uint64 { return bits.RotateLeft64(k*murmurC1, 31) * murmurC2 }
func mixK2(k uint64) uint64 { return bits.RotateLeft64(k*murmurC2, 33) * murmurC1 }

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
