// Package storetest is the conformance suite every store.Store
// implementation must pass, plus a shared set of benchmarks.
//
// An implementation wires it from its own _test.go file:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newStoreForTest(t) })
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		storetest.Bench(b, func(b *testing.B) store.Store { return newStoreForBench(b) })
//	}
//
// The suite only uses the store.Store interface. Every subtest asks the
// factory for its own store and uses user ids, event ids and device tokens
// that are unique to the run, so a factory may hand out sessions on one
// shared backend (a Cassandra keyspace that outlives the test) as long as
// each call returns a store that can be closed independently: the suite
// closes every store it opens. Timestamps are truncated to milliseconds so
// that backends with millisecond precision round-trip them exactly.
package storetest
