package cassandra

import (
	"slices"
	"testing"
	"time"
)

// TestMurmur3Token pins tokens the node gave for these keys (the
// integration test TestMurmur3TokenMatchesCassandra checks many more
// against a live node): a short key, a whole block, and tails with bytes
// above 0x7f, which Cassandra sign-extends.
func TestMurmur3Token(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int64
	}{
		{"u", 2213735050796133912},
		{"user-42", 5562752747223120546},
		{"uuuuuuuuuuuuuuuu", 2449196861754118000},
		{"éééééé17", 2924820156820110848},
		{"üxxxxxxxxxxxxxxxxxxxxx", -8645396905159827967},
	} {
		if got := murmur3Token([]byte(tc.key)); got != tc.want {
			t.Errorf("murmur3Token(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestRingOwner(t *testing.T) {
	hosts := []hostTokens{
		{dc: "dc1", tokens: []string{"-100", "200"}},
		{dc: "dc2", tokens: []string{"0"}},
		{dc: "dc1", tokens: []string{"100"}},
	}
	r := buildRing(hosts, "dc1") // dc1's hosts only: 0 owns (100, 200] and (200, -100], 1 owns (-100, 100]
	for _, tc := range []struct {
		token int64
		want  int
	}{{-100, 0}, {-99, 1}, {0, 1}, {100, 1}, {101, 0}, {200, 0}, {201, 0}, {-1 << 63, 0}} {
		if got := r.owner(tc.token); got != tc.want {
			t.Errorf("owner(%d) = %d, want %d", tc.token, got, tc.want)
		}
	}
	if r := buildRing(hosts, ""); r.hosts != 3 || r.owner(-50) != 1 || r.owner(50) != 2 {
		t.Errorf("every dc: %d hosts, owner(-50) %d, owner(50) %d; want 3, 1, 2", r.hosts, r.owner(-50), r.owner(50))
	}
	for name, hs := range map[string][]hostTokens{
		"no tokens":           {{dc: "dc1"}},
		"another partitioner": {{dc: "dc1", tokens: []string{"0x1f"}}},
		"no host in dc":       {{dc: "dc2", tokens: []string{"1"}}},
	} {
		if r := buildRing(hs, "dc1"); r != nil {
			t.Errorf("%s: a ring of %d hosts, want none", name, r.hosts)
		}
	}
	reads := 0
	c := &ringCache{read: func() []hostTokens { reads++; return hosts }}
	now := time.Now()
	c.get(now)
	c.get(now.Add(ringRefresh - time.Millisecond))
	c.get(now.Add(ringRefresh))
	if reads != 2 {
		t.Errorf("hosts read %d times, want 2 (first use, after ringRefresh)", reads)
	}
}

func TestPack(t *testing.T) {
	mk := func(user string, owner, size int) *part { return &part{user: user, owner: owner, size: size} }
	parts := []*part{
		mk("a", 0, 100), mk("b", 1, 100), mk("c", 0, 100), mk("d", 0, 100),
		mk("e", 0, 900), mk("f", 1, 2000), mk("g", -1, 10), mk("h", -1, 10), mk("i", 0, 100),
	}
	var got [][]string
	for _, b := range pack(parts, 3, 1000) {
		var us []string
		for _, p := range b {
			us = append(us, p.user)
		}
		got = append(got, us)
	}
	want := [][]string{{"a", "c", "d"}, {"b"}, {"e", "i"}, {"f"}, {"g"}, {"h"}} // e and i: 1,000 fits
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("pack: %v, want %v", got, want)
	}
}
