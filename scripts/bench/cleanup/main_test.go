package main

import "testing"

// TestValidate: only a benchmark's keyspace and topic prefix are accepted,
// so that a slip in the bench script cannot drop real data.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		keyspace, prefix string
		ok               bool
	}{
		{"herald_bench_17_3", "bench17r3.", true},
		{"herald_bench_17_3", "", true},
		{"", "bench17r3.", true},
		{"", "", false},
		{"herald", "", false},
		{"herald_test_ab12", "", false},
		{"herald_bench_1; DROP KEYSPACE herald", "", false},
		{"", "herald.", false},
		{"", "bench17r3", false}, // no dot: would match bench17r30.*
		{"", "bench.", false},
	} {
		err := validate(tc.keyspace, tc.prefix)
		if (err == nil) != tc.ok {
			t.Errorf("validate(%q, %q) = %v, want ok=%v", tc.keyspace, tc.prefix, err, tc.ok)
		}
	}
}
