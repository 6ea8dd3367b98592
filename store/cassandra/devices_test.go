//go:build integration

package cassandra

import (
	"errors"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// Rows as builds before migration 0005 wrote them (plain writes, no gen,
// no data in device_owner) are listed, moved, touched and judged stale.
func TestLegacyDeviceRows(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	u, v, tok := uniq("legacy-u"), uniq("legacy-v"), uniq("legacy-tok")
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ks := s.cfg.Keyspace
	if err := s.session.Query(`INSERT INTO `+ks+`.devices (user_id, device_token, platform, app_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		u, tok, "ios", "app", created).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.session.Query(`INSERT INTO `+ks+`.device_owner (device_token, user_id) VALUES (?, ?)`, tok, u).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Devices(ctx, u)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Devices of a legacy row = %+v, %v", ds, err)
	}
	if d := ds[0]; d.Platform != "ios" || d.AppID != "app" || !d.CreatedAt.Equal(created) || !d.LastSeen.Equal(created) {
		t.Fatalf("legacy device = %+v", d)
	}
	// Re-registration keeps the legacy CreatedAt.
	if err := s.PutDevice(ctx, herald.Device{UserID: u, Platform: "android", Token: tok, AppID: "app2", CreatedAt: created.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ds, err = s.Devices(ctx, u)
	if err != nil || len(ds) != 1 || !ds[0].CreatedAt.Equal(created) || ds[0].Platform != "android" {
		t.Fatalf("re-registered legacy device = %+v, %v", ds, err)
	}
	// Another legacy token: moved, then judged stale by its new owner.
	tok2 := uniq("legacy-tok2")
	if err := s.session.Query(`INSERT INTO `+ks+`.devices (user_id, device_token, platform, app_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		u, tok2, "ios", "app", created).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.session.Query(`INSERT INTO `+ks+`.device_owner (device_token, user_id) VALUES (?, ?)`, tok2, u).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchDevice(ctx, u, tok2, created.Add(2*store.TouchInterval)); err != nil {
		t.Fatal(err)
	}
	if del, err := s.DeleteDeviceIfStale(ctx, u, tok2, created.Add(time.Minute)); err != nil || !del {
		t.Fatalf("DeleteDeviceIfStale of a legacy row = %v, %v; want true", del, err)
	}
	if err := s.PutDevice(ctx, herald.Device{UserID: v, Platform: "ios", Token: tok, CreatedAt: created.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.Devices(ctx, u); err != nil || len(ds) != 0 {
		t.Fatalf("previous owner after the move = %+v, %v", ds, err)
	}
}

// An index row whose owner row names someone else (a batch lost after the
// move's transaction) is not listed, and its user cannot delete it; a
// registration whose index batch was lost is completed by the retry.
func TestDeviceIndexLeftovers(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	a, b, tok := uniq("left-a"), uniq("left-b"), uniq("left-tok")
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := s.PutDevice(ctx, herald.Device{UserID: a, Platform: "ios", Token: tok, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	// The move to b commits its transaction but not its index batch.
	cur, err := s.owner(ctx, tok, false)
	if err != nil {
		t.Fatal(err)
	}
	gen := nextGen(cur.gen)
	applied, err := s.ownerCAS(ctx, s.q.ownerSet, b, gen, "ios", "", at, at, at, tok, a, cur.gen)
	if err != nil || !applied {
		t.Fatalf("ownerSet = %v, %v", applied, err)
	}
	if ds, err := s.Devices(ctx, a); err != nil || len(ds) != 0 {
		t.Fatalf("a lists a token b owns: %+v, %v", ds, err)
	}
	if err := s.DeleteDevice(ctx, a, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteDevice by a = %v, want ErrNotFound", err)
	}
	if ds, err := s.Devices(ctx, b); err != nil || len(ds) != 0 {
		t.Fatalf("b lists a token whose index row was never written: %+v, %v", ds, err)
	}
	// b's client retries the registration: the index is completed.
	if err := s.PutDevice(ctx, herald.Device{UserID: b, Platform: "ios", Token: tok, CreatedAt: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Devices(ctx, b)
	if err != nil || len(ds) != 1 || ds[0].Token != tok {
		t.Fatalf("b after the retry = %+v, %v", ds, err)
	}
}

func TestPushProgressHasTTL(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	u := uniq("ttl")
	if err := s.MarkPushSent(ctx, u, "job", "tok"); err != nil {
		t.Fatal(err)
	}
	var ttl int
	if err := s.session.Query(`SELECT TTL(sent_at) FROM `+s.cfg.Keyspace+`.push_progress WHERE user_id = ? AND job_id = ? AND device_token = ?`,
		u, "job", "tok").ScanContext(ctx, &ttl); err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > s.pushTTL() {
		t.Fatalf("TTL of push progress = %d, want in (0, %d]", ttl, s.pushTTL())
	}
}
