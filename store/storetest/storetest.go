package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// opTimeout guards every subtest against a hung backend; it is a failure
// guard, never a performance assertion.
const opTimeout = 2 * time.Minute

// Options adapts the suite to what an implementation documents. The zero
// Options holds a store to the strictest reading of the contract.
type Options struct {
	// ApproxMemberCount accepts a MemberCount off by up to 1 + 10% of the
	// true count, for stores that document an approximate count (e.g. one
	// kept in counters that a retried write may apply twice). The memory
	// and embedded stores are exact and leave it false.
	ApproxMemberCount bool
}

// Run runs the conformance suite with the zero Options. newStore is called
// once per subtest and must return a ready store; the suite closes it when
// the subtest ends (Close is idempotent, so the factory may also register
// its own cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	RunWith(t, newStore, Options{})
}

// RunWith is Run with Options.
func RunWith(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	s := &suite{newStore: newStore, run: runID(), opts: opts}

	t.Run("Append", func(t *testing.T) {
		t.Run("SequencesPerUser", s.appendSequencesPerUser)
		t.Run("IndependentUsers", s.appendIndependentUsers)
		t.Run("InterleavedBatch", s.appendInterleavedBatch)
		t.Run("DuplicateAcrossCalls", s.appendDuplicateAcrossCalls)
		t.Run("DuplicateWithinBatch", s.appendDuplicateWithinBatch)
		t.Run("SameEventIDOtherUser", s.appendSameEventIDOtherUser)
		t.Run("ReplayBatch", s.appendReplayBatch)
		t.Run("ReplayAfterRead", s.appendReplayAfterRead)
		t.Run("IgnoresInputSeqPrevRead", s.appendIgnoresInputSeqPrevRead)
		t.Run("Empty", s.appendEmpty)
	})
	t.Run("Fence", func(t *testing.T) {
		t.Run("RefusesOldWriter", s.fenceRefusesOldWriter)
		t.Run("NewWriterContinues", s.fenceNewWriterContinues)
		t.Run("ScopesIndependent", s.fenceScopesIndependent)
		t.Run("ValidatesScope", s.fenceValidatesScope)
		t.Run("AfterClose", s.fenceAfterClose)
		t.Run("RacesAppends", s.fenceRacesAppends)
		t.Run("SharedWriter", s.concurrentSharedWriter)
	})
	t.Run("List", func(t *testing.T) {
		t.Run("AfterAndLimit", s.listAfterAndLimit)
		t.Run("Paging", s.listPaging)
		t.Run("UnreadOnly", s.listUnreadOnly)
		t.Run("UnknownUser", s.listUnknownUser)
	})
	t.Run("Unread", func(t *testing.T) {
		t.Run("MarkRead", s.unreadMarkRead)
		t.Run("MarkAllRead", s.unreadMarkAllRead)
		t.Run("PerUser", s.unreadPerUser)
		t.Run("UnknownUser", s.unreadUnknownUser)
	})
	t.Run("Claim", s.claim)
	t.Run("Preferences", func(t *testing.T) {
		t.Run("Default", s.preferencesDefault)
		t.Run("RoundTrip", s.preferencesRoundTrip)
	})
	t.Run("Devices", func(t *testing.T) {
		t.Run("PutListDelete", s.devicesPutListDelete)
		t.Run("Refresh", s.devicesRefresh)
		t.Run("TokenMoves", s.devicesTokenMoves)
		t.Run("Reregister", s.devicesReregister)
		t.Run("MovedCreatedAt", s.devicesMovedCreatedAt)
		t.Run("Touch", s.devicesTouch)
		t.Run("DeleteIfStale", s.devicesDeleteIfStale)
	})
	t.Run("PushProgress", s.pushProgress)
	t.Run("Policy", func(t *testing.T) {
		t.Run("StateAbsent", s.policyStateAbsent)
		t.Run("StateRoundTrip", s.policyStateRoundTrip)
		t.Run("StateMax", s.policyStateMax)
		t.Run("Validation", s.policyValidation)
		t.Run("DueOrder", s.policyDueOrder)
		t.Run("DuePaging", s.policyDuePaging)
		t.Run("DueNormalised", s.policyDueNormalised)
		t.Run("Scopes", s.policyScopes)
		t.Run("Cursor", s.policyCursor)
		t.Run("Fenced", s.policyFenced)
		t.Run("FenceRace", s.policyFenceRace)
		t.Run("Concurrent", s.policyConcurrent)
	})
	t.Run("Subscriptions", func(t *testing.T) {
		t.Run("Subscribe", s.subsSubscribe)
		t.Run("Unsubscribe", s.subsUnsubscribe)
		t.Run("TopicsOrder", s.subsTopicsOrder)
		t.Run("MembersPaging", s.subsMembersPaging)
		t.Run("Validation", s.subsValidation)
		t.Run("MaxTopics", s.subsMaxTopics)
		t.Run("MemberCount", s.subsMemberCount)
		t.Run("TopicsIndependent", s.subsTopicsIndependent)
		t.Run("Concurrent", s.subsConcurrent)
	})
	t.Run("Feeds", func(t *testing.T) {
		t.Run("Positions", s.feedPositions)
		t.Run("Idempotent", s.feedIdempotent)
		t.Run("Validation", s.feedValidation)
		t.Run("Paging", s.feedPaging)
		t.Run("RoundTrip", s.feedRoundTrip)
		t.Run("TopicsIndependent", s.feedTopicsIndependent)
		t.Run("Cursors", s.feedCursors)
		t.Run("Concurrent", s.feedConcurrent)
	})
	t.Run("Validation", func(t *testing.T) {
		t.Run("UserIDs", s.rejectsBadUserIDs)
		t.Run("EventIDs", s.rejectsBadEventIDs)
		t.Run("Preferences", s.preferencesValidated)
		t.Run("Devices", s.devicesValidated)
	})
	t.Run("Ping", s.ping)
	t.Run("Close", s.close)
	t.Run("Concurrent", func(t *testing.T) {
		t.Run("MarkReadVsAppend", s.concurrentMarkReadVsAppend)
		t.Run("TokenMoves", s.concurrentTokenMoves)
	})
}

type suite struct {
	newStore func(t *testing.T) store.Store
	opts     Options
	run      string       // random per Run call, keeps ids unique on shared backends
	n        atomic.Int64 // distinguishes ids within the run
}

// runID is random so that runs against a persistent backend never collide.
func runID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// open returns a fresh store closed at the end of the test, and a context
// bounded by opTimeout.
func (s *suite) open(t *testing.T) (store.Store, context.Context) {
	t.Helper()
	st := s.newStore(t)
	if st == nil {
		t.Fatal("newStore returned nil")
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return st, ctx
}

// openWriter is open plus the Writer of a scope unique to the test, fenced
// once: a test appends through one writer, as an enricher does for the
// partitions it owns.
func (s *suite) openWriter(t *testing.T) (store.Store, store.Writer, context.Context) {
	t.Helper()
	st, ctx := s.open(t)
	return st, mustFence(t, ctx, st, s.scope("w")), ctx
}

// scope returns a scope unique to this run, shaped like the enricher's
// "topic/partition".
func (s *suite) scope(name string) string {
	return fmt.Sprintf("st-%s-%s/%d", s.run, name, s.n.Add(1))
}

func mustFence(t *testing.T, ctx context.Context, st store.Store, scope string) store.Writer {
	t.Helper()
	w, err := st.Fence(ctx, scope)
	if err != nil {
		t.Fatalf("Fence(%s): %v", scope, err)
	}
	if w == nil {
		t.Fatalf("Fence(%s) returned a nil Writer", scope)
	}
	if got := w.Scope(); got != scope {
		t.Fatalf("Fence(%s): Writer.Scope() = %q", scope, got)
	}
	return w
}

// user returns a user id unique to this run, in the contract's alphabet.
func (s *suite) user(name string) string {
	return fmt.Sprintf("st-%s-%d-%s", s.run, s.n.Add(1), name)
}

// token returns a device token unique to this run. name comes first so that
// tests control how tokens sort.
func (s *suite) token(name string) string {
	return fmt.Sprintf("tok-%s-%s-%d", name, s.run, s.n.Add(1))
}

// baseTime is a fixed instant with millisecond precision.
var baseTime = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// notif builds an unsequenced notification with every field set.
func notif(userID, eventID string) herald.Notification {
	created := baseTime.Add(time.Duration(len(eventID)) * time.Millisecond)
	return herald.Notification{
		ID:        herald.NewID(created),
		EventID:   eventID,
		Type:      "mention",
		Priority:  herald.PriorityNormal,
		Title:     "title " + eventID,
		Body:      "body of " + eventID + " for " + userID,
		Data:      []byte(`{"event":"` + eventID + `","n":1}`),
		CreatedAt: created,
		UserID:    userID,
	}
}

// notifs builds n notifications for userID with event ids prefix-1..prefix-n.
func notifs(userID, prefix string, n int) []herald.Notification {
	out := make([]herald.Notification, n)
	for i := range out {
		out[i] = notif(userID, fmt.Sprintf("%s-%d", prefix, i+1))
	}
	return out
}

func mustAppend(t *testing.T, ctx context.Context, w store.Writer, ns []herald.Notification) []store.AppendResult {
	t.Helper()
	res, err := w.Append(ctx, ns)
	if err != nil {
		t.Fatalf("Append(%d notifications): %v", len(ns), err)
	}
	if len(res) != len(ns) {
		t.Fatalf("Append(%d notifications) returned %d results", len(ns), len(res))
	}
	return res
}

func mustList(t *testing.T, ctx context.Context, st store.Store, userID string, after uint64, limit int, unreadOnly bool) []herald.Notification {
	t.Helper()
	l, err := st.List(ctx, userID, after, limit, unreadOnly)
	if err != nil {
		t.Fatalf("List(%s, after=%d, limit=%d, unreadOnly=%v): %v", userID, after, limit, unreadOnly, err)
	}
	return l
}

func mustLastSeq(t *testing.T, ctx context.Context, st store.Store, userID string) uint64 {
	t.Helper()
	n, err := st.LastSeq(ctx, userID)
	if err != nil {
		t.Fatalf("LastSeq(%s): %v", userID, err)
	}
	return n
}

func mustUnread(t *testing.T, ctx context.Context, st store.Store, userID string) int64 {
	t.Helper()
	n, err := st.UnreadCount(ctx, userID)
	if err != nil {
		t.Fatalf("UnreadCount(%s): %v", userID, err)
	}
	return n
}

func mustMarkRead(t *testing.T, ctx context.Context, st store.Store, userID string, seqs ...uint64) int64 {
	t.Helper()
	n, err := st.MarkRead(ctx, userID, seqs)
	if err != nil {
		t.Fatalf("MarkRead(%s, %v): %v", userID, seqs, err)
	}
	return n
}

func mustMarkAllRead(t *testing.T, ctx context.Context, st store.Store, userID string) int64 {
	t.Helper()
	n, err := st.MarkAllRead(ctx, userID)
	if err != nil {
		t.Fatalf("MarkAllRead(%s): %v", userID, err)
	}
	return n
}

// seqsOf returns the seqs of l in order.
func seqsOf(l []herald.Notification) []uint64 {
	out := make([]uint64, len(l))
	for i := range l {
		out[i] = l[i].Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantSeqs(t *testing.T, what string, l []herald.Notification, want []uint64) {
	t.Helper()
	if got := seqsOf(l); !equalSeqs(got, want) {
		t.Fatalf("%s: seqs %v, want %v", what, got, want)
	}
}

// sameContent checks that stored carries the caller-supplied fields of in.
func sameContent(t *testing.T, what string, stored, in herald.Notification) {
	t.Helper()
	if stored.ID != in.ID {
		t.Errorf("%s: ID %q, want %q", what, stored.ID, in.ID)
	}
	if stored.EventID != in.EventID {
		t.Errorf("%s: EventID %q, want %q", what, stored.EventID, in.EventID)
	}
	if stored.UserID != in.UserID {
		t.Errorf("%s: UserID %q, want %q", what, stored.UserID, in.UserID)
	}
	if stored.Type != in.Type || stored.Priority != in.Priority {
		t.Errorf("%s: Type/Priority %q/%q, want %q/%q", what, stored.Type, stored.Priority, in.Type, in.Priority)
	}
	if stored.Title != in.Title || stored.Body != in.Body {
		t.Errorf("%s: Title/Body %q/%q, want %q/%q", what, stored.Title, stored.Body, in.Title, in.Body)
	}
	if string(stored.Data) != string(in.Data) {
		t.Errorf("%s: Data %s, want %s", what, stored.Data, in.Data)
	}
	if !stored.CreatedAt.Equal(in.CreatedAt) {
		t.Errorf("%s: CreatedAt %v, want %v", what, stored.CreatedAt, in.CreatedAt)
	}
}

// checkChain checks that l is seqs from..to with Prev = Seq-1.
func checkChain(t *testing.T, what string, l []herald.Notification, from, to uint64) {
	t.Helper()
	wantSeqs(t, what, l, span(from, to))
	for _, n := range l {
		if n.Prev != n.Seq-1 {
			t.Fatalf("%s: seq %d has prev %d, want %d", what, n.Seq, n.Prev, n.Seq-1)
		}
	}
}
