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
// closes every store it opens. Tests append through a Writer fenced for a
// scope unique to the test, one per store, so no test fences another's
// writer on a shared backend. Timestamps are truncated to milliseconds so
// that backends with millisecond precision round-trip them exactly.
//
// The Fence group holds every implementation to the writer contract of
// store.Inbox.Fence, through the interface only (so Cassandra's fencing,
// which spans processes, is judged by the same tests as the in-process
// epochs of memory and embedded):
//   - RefusesOldWriter: after a second Fence of the scope the first Writer's
//     appends (new events, a replay of its own batch, a new user) return
//     errors.Is(err, store.ErrFenced), again on retry, and List, LastSeq
//     and UnreadCount are unchanged;
//   - NewWriterContinues: the new Writer continues each user's seqs densely,
//     and replaying through it a batch the old one stored returns the
//     stored seqs and ids with Created=false;
//   - ScopesIndependent: fencing scope A leaves scope B's Writer working,
//     and the other way round;
//   - ValidatesScope: an empty scope and one of MaxScopeBytes+1 bytes are a
//     *herald.ValidationError on "scope"; MaxScopeBytes bytes work;
//   - AfterClose: Fence and Append through an earlier Writer return
//     store.ErrClosed;
//   - RacesAppends: a Fence while the old Writer keeps appending for a user:
//     the old one ends with ErrFenced, nothing it stored lands after the new
//     Writer's notifications, and the seqs stay dense;
//   - SharedWriter: several goroutines append for different users through
//     one Writer, with dense seqs per user.
//
// The Policy group holds every implementation to store.Policies and the
// Writer's PutPolicy and SetPolicyCursor: state round trips as a copy,
// replace and delete (nil or empty); the MaxPolicyStateBytes boundary and
// the fields named by validation errors ("state", "user_id",
// "due.user_id", "due.key", "limit", "scope"); the due index in
// (At, UserID, Key) order with a strict after, an inclusive until and a
// limit, paged by 1,000 over 2,500 entries; At truncated to microseconds
// and returned in UTC; duplicates kept once; scopes independent; the
// cursor zero at first and only moving forward; and a fenced Writer's
// PutPolicy and SetPolicyCursor returning ErrFenced and changing nothing,
// and losing to the new Writer when a Fence races its puts.
// Due times are a day after the wall clock, so that no store may drop
// them under store.PolicyDueRetention, and the tests never assert that
// entries at or before a cursor were dropped (stores may keep them).
//
// The Subscriptions group holds every implementation to
// store.Subscriptions: Subscribe reports new memberships and keeps the
// first SubscribedAt (microseconds, UTC; a zero at is the time of the
// call); Unsubscribe reports whether there was one; Topics ascending by
// topic and Members ascending bytewise by user id, never nil, paged by
// 1,000 over 2,500 members with a strict after; the fields named by
// validation errors ("topic", "user_id", "limit"); MaxTopicsPerUser (the
// next topic refused on "topic", a repeat at the cap fine, one more after
// an Unsubscribe); MemberCount through adds, repeats, removes and re-adds
// (exact unless RunWith's Options.ApproxMemberCount); topics independent;
// and concurrent Subscribes of the same users, exactly one of each pair
// new.
package storetest
