package pipeline

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

// refusingStore rejects, as invalid, every Append that carries a
// notification of user bad.
type refusingStore struct {
	store.Store
	bad string
}

func (s *refusingStore) Fence(ctx context.Context, scope string) (store.Writer, error) {
	w, err := s.Store.Fence(ctx, scope)
	if err != nil {
		return nil, err
	}
	return &refusingWriter{Writer: w, bad: s.bad}, nil
}

// refusingWriter is a Writer of a refusingStore.
type refusingWriter struct {
	store.Writer
	bad string
}

func (w *refusingWriter) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	for _, n := range ns {
		if n.UserID == w.bad {
			return nil, &herald.ValidationError{Field: "title", Reason: "refused by the store for " + w.bad}
		}
	}
	return w.Writer.Append(ctx, ns)
}

// TestEnricherPermanentErrorDeadLettersOneUser: the store refuses one
// user's notifications for good; that user's events of the batch go to the
// DLQ with the reason, everybody else's are stored and delivered, and the
// partition moves on.
func TestEnricherPermanentErrorDeadLettersOneUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	// Two users of one partition, interleaved, so both are in the same
	// batches (a record outside its user's partition would be forwarded).
	bad := userSharingPartition("u-ok", 12)
	muted := herald.DefaultPreferences()
	muted.MutedTypes = []string{"like"}
	e.setPrefs(bad, muted)

	part := partitionFor("u-ok", 12)
	var sent []*kgo.Record
	for _, v := range []struct{ user, id, typ string }{
		{"u-ok", "ok-1", "mention"}, {bad, "bad-1", "mention"}, {"u-ok", "ok-2", "mention"},
		{bad, "bad-like", "like"}, {bad, "bad-2", "mention"}, {"u-ok", "ok-3", "mention"},
	} {
		sent = append(sent, &kgo.Record{Topic: ev, Key: []byte(v.user), Partition: part, Value: eventJSON(v.id, v.user, v.typ)})
	}
	if err := e.prod.ProduceSync(e.ctx, sent...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := e.enricherConfig("txn-permanent")
	cfg.Store = &refusingStore{Store: e.store, bad: bad}
	e.startEnricher(cfg)
	e.waitCommitted(enricherGroup, ev)

	if got := eventIDs(e.list("u-ok")); !slices.Equal(got, []string{"ok-1", "ok-2", "ok-3"}) {
		t.Fatalf("u-ok inbox = %v", got)
	}
	if got := e.list(bad); len(got) != 0 {
		t.Fatalf("bad user's inbox = %v, want empty", eventIDs(got))
	}
	var delivered []string
	for _, r := range e.readAll(e.names.Deliveries) {
		delivered = append(delivered, decodeNotification(t, r).EventID)
	}
	if !slices.Equal(delivered, []string{"ok-1", "ok-2", "ok-3"}) {
		t.Fatalf("deliveries = %v", delivered)
	}
	dlq := e.readAll(e.names.EventsDLQ)
	var ids []string
	for _, r := range dlq {
		d, err := DecodeDeadLetter(r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(d.Reason, "refused by the store for "+bad) || d.SourceTopic != ev || d.SourcePartition != part {
			t.Errorf("DLQ record: %+v", d)
		}
		got, err := DecodeEventRecord(r)
		if err != nil {
			t.Fatalf("DLQ record is not the original event: %v", err)
		}
		ids = append(ids, got.ID)
	}
	// The muted event was handled (dropped) before the store was asked.
	if !slices.Equal(ids, []string{"bad-1", "bad-2"}) {
		t.Fatalf("DLQ holds %v, want [bad-1 bad-2]:%s", ids, fmtRecords(dlq))
	}

	// The partition moved on: a later event of the good user is handled.
	e.produce(ev, "u-ok", eventJSON("ok-4", "u-ok", "mention"))
	e.waitCommitted(enricherGroup, ev)
	if got := eventIDs(e.list("u-ok")); !slices.Equal(got, []string{"ok-1", "ok-2", "ok-3", "ok-4"}) {
		t.Fatalf("u-ok inbox after = %v", got)
	}
}

// userSharingPartition returns a user id other than user that the
// default partitioner puts in user's partition of n.
func userSharingPartition(user string, n int) string {
	for i := 0; ; i++ {
		if u := "u-bad-" + strconv.Itoa(i); partitionFor(u, n) == partitionFor(user, n) {
			return u
		}
	}
}

// prefsFailing fails GetPreferences of one user with err.
type prefsFailing struct {
	store.Store
	user string
	err  error
}

func (s *prefsFailing) GetPreferences(ctx context.Context, user string) (herald.Preferences, error) {
	if user == s.user {
		return herald.Preferences{}, s.err
	}
	return s.Store.GetPreferences(ctx, user)
}

func TestEnricherPermanentPreferencesError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	e.produce(ev, "u-bad", eventJSON("b1", "u-bad", "mention"))
	e.produce(ev, "u-ok", eventJSON("o1", "u-ok", "mention"))
	cfg := e.enricherConfig("txn-prefs-permanent")
	cfg.Store = &prefsFailing{Store: e.store, user: "u-bad", err: errclass.Permanent(errors.New("corrupt preferences row"))}
	e.startEnricher(cfg)
	e.waitCommitted(enricherGroup, ev)

	if got := eventIDs(e.list("u-ok")); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("u-ok inbox = %v", got)
	}
	dlq := e.readAll(e.names.EventsDLQ)
	if len(dlq) != 1 || !strings.Contains(mustHeader(t, dlq[0], HeaderError), "corrupt preferences row") {
		t.Fatalf("DLQ = %s", fmtRecords(dlq))
	}
}

func TestEnricherFatalErrorEndsRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	fatal := errors.New("store handle poisoned")
	cfg := e.enricherConfig("txn-fatal")
	cfg.Store = &prefsFailing{Store: e.store, user: "u1", err: errclass.Fatal(fatal)}
	e.produce(ev, "u1", eventJSON("f1", "u1", "mention"))
	_, r := e.startEnricher(cfg)
	err := r.wait(t, e.ctx)
	if !errors.Is(err, fatal) || !errclass.IsFatal(err) {
		t.Fatalf("Run = %v, want the fatal error", err)
	}
	if got := e.list("u1"); len(got) != 0 {
		t.Fatalf("inbox = %v", eventIDs(got))
	}
	if dlq := e.readAll(e.names.EventsDLQ); len(dlq) != 0 {
		t.Fatalf("a fatal error dead-lettered:%s", fmtRecords(dlq))
	}
}
