package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// oneDevice returns the user's only device, failing otherwise.
func (s *suite) oneDevice(t *testing.T, ds []herald.Device, what string) herald.Device {
	t.Helper()
	if len(ds) != 1 {
		t.Fatalf("%s: %d devices (%+v), want 1", what, len(ds), ds)
	}
	return ds[0]
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// devicesReregister: a second registration by the same user keeps
// CreatedAt, takes the new platform and app id, and moves LastSeen to the
// registration time (never back).
func (s *suite) devicesReregister(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("rereg")
	d := herald.Device{UserID: u, Platform: "ios", Token: s.token("rr"), AppID: "old", CreatedAt: baseTime}
	mustPutDevice(t, ctx, st, d)
	got := s.oneDevice(t, mustDevices(t, ctx, st, u), "first registration")
	sameTime(t, "CreatedAt", got.CreatedAt, baseTime)
	sameTime(t, "LastSeen after registration", got.LastSeen, baseTime)

	d.Platform, d.AppID, d.CreatedAt = "android", "new", baseTime.Add(3*time.Hour)
	mustPutDevice(t, ctx, st, d)
	got = s.oneDevice(t, mustDevices(t, ctx, st, u), "re-registration")
	if got.Platform != "android" || got.AppID != "new" {
		t.Fatalf("re-registered device = %+v, want platform android, app id new", got)
	}
	sameTime(t, "CreatedAt after re-registration", got.CreatedAt, baseTime)
	sameTime(t, "LastSeen after re-registration", got.LastSeen, baseTime.Add(3*time.Hour))

	// A registration stamped earlier than the last one does not move
	// LastSeen back.
	d.CreatedAt = baseTime.Add(time.Hour)
	mustPutDevice(t, ctx, st, d)
	got = s.oneDevice(t, mustDevices(t, ctx, st, u), "late registration")
	sameTime(t, "LastSeen after an earlier-stamped registration", got.LastSeen, baseTime.Add(3*time.Hour))
}

// devicesMovedCreatedAt: a token moving to another user starts a new
// registration there.
func (s *suite) devicesMovedCreatedAt(t *testing.T) {
	st, ctx := s.open(t)
	a, b := s.user("mv-a"), s.user("mv-b")
	tok := s.token("mv")
	mustPutDevice(t, ctx, st, herald.Device{UserID: a, Platform: "ios", Token: tok, CreatedAt: baseTime})
	mustPutDevice(t, ctx, st, herald.Device{UserID: b, Platform: "ios", Token: tok, CreatedAt: baseTime.Add(time.Minute)})
	got := s.oneDevice(t, mustDevices(t, ctx, st, b), "new owner")
	sameTime(t, "moved CreatedAt", got.CreatedAt, baseTime.Add(time.Minute))
	sameTime(t, "moved LastSeen", got.LastSeen, baseTime.Add(time.Minute))
	// And back: a is a new registration again, not the old one.
	mustPutDevice(t, ctx, st, herald.Device{UserID: a, Platform: "ios", Token: tok, CreatedAt: baseTime.Add(2 * time.Minute)})
	if ds := mustDevices(t, ctx, st, b); len(ds) != 0 {
		t.Fatalf("token moved back, yet b still lists %+v", ds)
	}
	got = s.oneDevice(t, mustDevices(t, ctx, st, a), "owner again")
	sameTime(t, "CreatedAt after moving back", got.CreatedAt, baseTime.Add(2*time.Minute))
}

func (s *suite) devicesTouch(t *testing.T) {
	st, ctx := s.open(t)
	u, other := s.user("touch"), s.user("touch-other")
	tok := s.token("t")
	mustPutDevice(t, ctx, st, herald.Device{UserID: u, Platform: "android", Token: tok, AppID: "app", CreatedAt: baseTime})
	steps := []struct {
		seen, want time.Time
		why        string
	}{
		{baseTime.Add(store.TouchInterval / 2), baseTime, "within the interval: no write"},
		{baseTime.Add(store.TouchInterval), baseTime, "exactly the interval: no write"},
		{baseTime.Add(2 * store.TouchInterval), baseTime.Add(2 * store.TouchInterval), "older than the interval: refreshed"},
		{baseTime.Add(2*store.TouchInterval + time.Minute), baseTime.Add(2 * store.TouchInterval), "just refreshed: no write"},
		{baseTime, baseTime.Add(2 * store.TouchInterval), "an earlier sighting never moves it back"},
	}
	for _, c := range steps {
		if err := st.TouchDevice(ctx, u, tok, c.seen); err != nil {
			t.Fatalf("TouchDevice(%v): %v", c.seen, err)
		}
		got := s.oneDevice(t, mustDevices(t, ctx, st, u), c.why)
		sameTime(t, "LastSeen ("+c.why+")", got.LastSeen, c.want)
		sameTime(t, "CreatedAt ("+c.why+")", got.CreatedAt, baseTime)
		if got.Platform != "android" || got.AppID != "app" {
			t.Fatalf("TouchDevice changed the device: %+v", got)
		}
	}
	// Touching what the user does not have creates nothing.
	later := baseTime.Add(100 * store.TouchInterval)
	for _, c := range []struct{ user, token string }{{u, s.token("unknown")}, {other, tok}, {u, ""}} {
		if err := st.TouchDevice(ctx, c.user, c.token, later); err != nil {
			t.Fatalf("TouchDevice(%s, %q) of a device the user lacks = %v, want nil", c.user, c.token, err)
		}
	}
	if ds := mustDevices(t, ctx, st, other); len(ds) != 0 {
		t.Fatalf("TouchDevice created devices for another user: %+v", ds)
	}
	s.oneDevice(t, mustDevices(t, ctx, st, u), "after touches of unknown devices")
	// Nor after the device is deleted.
	if err := st.DeleteDevice(ctx, u, tok); err != nil {
		t.Fatal(err)
	}
	if err := st.TouchDevice(ctx, u, tok, later); err != nil {
		t.Fatalf("TouchDevice of a deleted device: %v", err)
	}
	if ds := mustDevices(t, ctx, st, u); len(ds) != 0 {
		t.Fatalf("TouchDevice resurrected a deleted device: %+v", ds)
	}
}

func (s *suite) devicesDeleteIfStale(t *testing.T) {
	st, ctx := s.open(t)
	u, other := s.user("stale"), s.user("stale-other")
	dead := s.token("dead")
	keep := herald.Device{UserID: u, Platform: "ios", Token: s.token("keep"), CreatedAt: baseTime}
	mustPutDevice(t, ctx, st, keep)
	mustPutDevice(t, ctx, st, herald.Device{UserID: u, Platform: "ios", Token: dead, CreatedAt: baseTime})

	del := func(user, token string, before time.Time, want bool, why string) {
		t.Helper()
		got, err := st.DeleteDeviceIfStale(ctx, user, token, before)
		if err != nil {
			t.Fatalf("DeleteDeviceIfStale (%s): %v", why, err)
		}
		if got != want {
			t.Fatalf("DeleteDeviceIfStale (%s) = %v, want %v", why, got, want)
		}
	}
	del(u, dead, baseTime, false, "registered at the feedback time")
	del(other, dead, baseTime.Add(time.Hour), false, "another user's token")
	del(u, s.token("never"), baseTime.Add(time.Hour), false, "unknown token")
	del(u, "", baseTime.Add(time.Hour), false, "empty token")
	if n := len(mustDevices(t, ctx, st, u)); n != 2 {
		t.Fatalf("refused stale deletes changed the devices: %d, want 2", n)
	}
	del(u, dead, baseTime.Add(time.Second), true, "registered before the feedback")
	s.oneDevice(t, mustDevices(t, ctx, st, u), "after the stale delete")
	del(u, dead, baseTime.Add(time.Second), false, "already deleted")

	// Re-registered after the failing send started: kept, although its
	// CreatedAt (kept from the first registration) is older.
	mustPutDevice(t, ctx, st, herald.Device{UserID: u, Platform: "android", Token: keep.Token, CreatedAt: baseTime.Add(2 * time.Hour)})
	del(u, keep.Token, baseTime.Add(time.Hour), false, "re-registered after the send")
	got := s.oneDevice(t, mustDevices(t, ctx, st, u), "re-registered")
	sameTime(t, "CreatedAt", got.CreatedAt, baseTime)
	// A successful push (TouchDevice) is no registration: it does not save
	// a token the provider later calls dead.
	if err := st.TouchDevice(ctx, u, keep.Token, baseTime.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	del(u, keep.Token, baseTime.Add(3*time.Hour), true, "registered before, touched after")

	// A token that moved: the previous owner's feedback cannot delete it.
	mv := s.token("moved")
	mustPutDevice(t, ctx, st, herald.Device{UserID: u, Platform: "ios", Token: mv, CreatedAt: baseTime})
	mustPutDevice(t, ctx, st, herald.Device{UserID: other, Platform: "ios", Token: mv, CreatedAt: baseTime.Add(time.Minute)})
	del(u, mv, baseTime.Add(time.Hour), false, "token moved to another user")
	s.oneDevice(t, mustDevices(t, ctx, st, other), "new owner after the old owner's feedback")
	del(other, mv, baseTime.Add(time.Hour), true, "the new owner's feedback")
	if ds := mustDevices(t, ctx, st, other); len(ds) != 0 {
		t.Fatalf("after the stale delete: %+v", ds)
	}
	// A deleted token can be registered again.
	mustPutDevice(t, ctx, st, herald.Device{UserID: other, Platform: "ios", Token: mv, CreatedAt: baseTime.Add(2 * time.Hour)})
	got = s.oneDevice(t, mustDevices(t, ctx, st, other), "registered again after deletion")
	sameTime(t, "CreatedAt of a new registration", got.CreatedAt, baseTime.Add(2*time.Hour))
}

// concurrentTokenMoves: users registering one token at the same time end
// with exactly one of them listing it, and that one can delete it.
func (s *suite) concurrentTokenMoves(t *testing.T) {
	st, ctx := s.open(t)
	const n = 6
	tok := s.token("contested")
	users := make([]string, n)
	for i := range users {
		users[i] = s.user(fmt.Sprintf("contest%d", i))
	}
	for round := range 3 {
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Go(func() {
				d := herald.Device{UserID: u, Platform: "ios", Token: tok, CreatedAt: baseTime.Add(time.Duration(round*n+i) * time.Millisecond)}
				if err := st.PutDevice(ctx, d); err != nil {
					t.Errorf("PutDevice by %s: %v", u, err)
				}
			})
		}
		wg.Wait()
		var owners []string
		for _, u := range users {
			for _, d := range mustDevices(t, ctx, st, u) {
				if d.Token == tok {
					owners = append(owners, u)
				}
			}
		}
		if len(owners) != 1 {
			t.Fatalf("round %d: %d users list the token (%v), want exactly 1", round, len(owners), owners)
		}
		for _, u := range users {
			if u == owners[0] {
				continue
			}
			if err := st.DeleteDevice(ctx, u, tok); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: DeleteDevice by non-owner %s = %v, want ErrNotFound", round, u, err)
			}
		}
	}
}

func (s *suite) pushProgress(t *testing.T) {
	st, ctx := s.open(t)
	u, v := s.user("push"), s.user("push-other")
	sent := func(user, job string, want ...string) {
		t.Helper()
		got, err := st.PushSent(ctx, user, job)
		if err != nil {
			t.Fatalf("PushSent(%s, %s): %v", user, job, err)
		}
		if got == nil {
			t.Fatalf("PushSent(%s, %s) = nil, want an empty set", user, job)
		}
		keys := slices.Sorted(maps.Keys(got))
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Fatalf("PushSent(%s, %s) = %v, want %v", user, job, keys, want)
		}
		for k, ok := range got {
			if !ok {
				t.Fatalf("PushSent(%s, %s) holds %q = false", user, job, k)
			}
		}
	}
	mark := func(user, job, token string) {
		t.Helper()
		if err := st.MarkPushSent(ctx, user, job, token); err != nil {
			t.Fatalf("MarkPushSent(%s, %s, %s): %v", user, job, token, err)
		}
	}
	sent(u, "job-1")
	mark(u, "job-1", "tok-a")
	mark(u, "job-1", "tok-a") // a retry: idempotent
	mark(u, "job-1", "tok-b")
	mark(u, "job-2", "tok-a")
	mark(v, "job-1", "tok-c")
	sent(u, "job-1", "tok-a", "tok-b")
	sent(u, "job-2", "tok-a")
	sent(v, "job-1", "tok-c")
	sent(v, "job-2")
	// Job ids that prefix one another stay apart ("j" + "xtok" vs "jx" + "tok").
	mark(u, "j", "xtok")
	mark(u, "jx", "tok")
	sent(u, "j", "xtok")
	sent(u, "jx", "tok")
	// Long keys at the limits.
	long := strings.Repeat("j", store.MaxJobIDBytes)
	ltok := strings.Repeat("t", 4096)
	mark(u, long, ltok)
	sent(u, long, ltok)

	wantInvalid(t, "MarkPushSent (empty job)", st.MarkPushSent(ctx, u, "", "tok"), "job_id")
	wantInvalid(t, "MarkPushSent (long job)", st.MarkPushSent(ctx, u, long+"j", "tok"), "job_id")
	wantInvalid(t, "MarkPushSent (empty token)", st.MarkPushSent(ctx, u, "job", ""), "token")
	wantInvalid(t, "MarkPushSent (long token)", st.MarkPushSent(ctx, u, "job", ltok+"t"), "token")
	wantInvalid(t, "MarkPushSent (empty user)", st.MarkPushSent(ctx, "", "job", "tok"), "user_id")
	_, err := st.PushSent(ctx, u, "")
	wantInvalid(t, "PushSent (empty job)", err, "job_id")
	_, err = st.PushSent(ctx, "", "job")
	wantInvalid(t, "PushSent (empty user)", err, "user_id")
}
