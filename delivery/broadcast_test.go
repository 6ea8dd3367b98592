package delivery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store/memory"
)

// withLive tracks memberships and preferences from the env's memory store,
// as live broadcasts need.
func withLive(c *Config) {
	withMemberships(c)
	c.Preferences = c.Store.(*memory.Store)
}

func (e *env) putPrefs(user string, edit func(*herald.Preferences)) {
	e.t.Helper()
	p := herald.DefaultPreferences()
	edit(&p)
	if err := p.Validate(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutPreferences(context.Background(), user, p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) broadcast(id, topic, typ string, at time.Time) int {
	e.t.Helper()
	n, err := e.gw.Broadcast(context.Background(), herald.Broadcast{
		EventID: id, Topic: topic, Type: typ, Priority: herald.PriorityNormal,
		Title: "to all", Data: json.RawMessage(`{"k":1}`), CreatedAt: at,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// nextIsNotification reads c's next frame and fails unless it is the
// notification of seq: what proves that nothing was sent before it.
func nextIsNotification(t *testing.T, c *websocket.Conn, seq uint64) {
	t.Helper()
	if f := read(t, c); f.Type != "notification" || f.Notification.Seq != seq {
		t.Fatalf("got %v, want n%d and nothing before it", f, seq)
	}
}

func TestBroadcastFramesLiveMembers(t *testing.T) {
	e := newEnv(t, func(c *Config) { withLive(c); c.Shards = 4 })
	e.subscribe("ba", "news")
	e.subscribe("bb", "news")
	e.subscribe("bc", "other")
	e.subscribe("bd", "news")
	e.subscribe("be", "news")
	e.putPrefs("bd", func(p *herald.Preferences) { p.MutedTypes = []string{"promo"} })
	e.putPrefs("be", func(p *herald.Preferences) { p.Channels.InApp = false })

	baLive := e.dial("ba", "broadcasts=live")
	readUntilSynced(t, baLive)
	baInbox := e.dial("ba", "broadcasts=inbox")
	readUntilSynced(t, baInbox)
	bbSSE := e.sse("bb", "broadcasts=live", nil)
	bbSSE.untilSynced()
	bcLive := e.dial("bc", "broadcasts=live")
	readUntilSynced(t, bcLive)
	bdLive := e.dial("bd", "broadcasts=live")
	readUntilSynced(t, bdLive)
	beLive := e.dial("be", "broadcasts=live")
	readUntilSynced(t, beLive)
	waitMembers(t, e.gw, "news", "ba", "bb", "bd", "be")

	at := time.Now().UTC().Truncate(time.Microsecond)
	if n := e.broadcast("big-1", "news", "promo", at); n != 2 {
		t.Fatalf("big-1 framed for %d connections, want 2 (ba's live socket, bb's stream)", n)
	}
	f := read(t, baLive)
	if f.Type != "broadcast" || f.Broadcast.EventID != "big-1" || f.Broadcast.Topic != "news" ||
		f.Broadcast.Type != "promo" || f.Broadcast.Title != "to all" || string(f.Broadcast.Data) != `{"k":1}` ||
		!f.Broadcast.CreatedAt.Equal(at) || f.Notification != nil {
		t.Fatalf("ba's live socket got %v %+v", f, f.Broadcast)
	}
	if f := bbSSE.mustFrame(); f.Type != "broadcast" || f.Broadcast.EventID != "big-1" {
		t.Fatalf("bb's stream got %v", f)
	}
	// A repeat (a fan-out batch expanded again) is dropped.
	if n := e.broadcast("big-1", "news", "promo", at); n != 0 {
		t.Fatalf("the repeat of big-1 framed %d times", n)
	}
	if v := counterValue(e.gw.m.broadcasts.WithLabelValues("repeat")); v != 1 {
		t.Fatalf("repeats counted %v, want 1", v)
	}
	// bd muted only promo: another type reaches them.
	if n := e.broadcast("big-2", "news", "release", at); n != 3 {
		t.Fatalf("big-2 framed for %d connections, want 3 (ba, bb, bd)", n)
	}
	if f := read(t, bdLive); f.Type != "broadcast" || f.Broadcast.EventID != "big-2" {
		t.Fatalf("bd got %v, want big-2 and not big-1", f)
	}
	// Nothing else reached anyone: the next frame of each is a notification.
	for _, c := range []struct {
		user string
		ws   *websocket.Conn
		skip int
	}{{"ba", baLive, 1}, {"bc", bcLive, 0}, {"be", beLive, 0}} {
		for range c.skip {
			if f := read(t, c.ws); f.Type != "broadcast" || f.Broadcast.EventID != "big-2" {
				t.Fatalf("%s got %v, want big-2", c.user, f)
			}
		}
		e.publish(c.user, 1)
		nextIsNotification(t, c.ws, 1)
	}
	nextIsNotification(t, baInbox, 1) // ba's inbox-only socket got no broadcast
	if seqs, _ := readSeqsOrBroadcast(t, bbSSE); len(seqs) != 0 {
		t.Fatalf("bb: %v", seqs)
	}
	if v := counterValue(e.gw.m.broadcastFrames); v != 5 {
		t.Fatalf("frames counted %v, want 5", v)
	}
}

// readSeqsOrBroadcast reads s's next frame, which must be big-2's
// broadcast; it returns the seqs of notifications seen before it.
func readSeqsOrBroadcast(t *testing.T, s *sseStream) ([]uint64, frame) {
	t.Helper()
	var seqs []uint64
	for {
		f := s.mustFrame()
		switch f.Type {
		case "notification":
			seqs = append(seqs, f.Notification.Seq)
		case "broadcast":
			if f.Broadcast.EventID != "big-2" {
				t.Fatalf("bb got broadcast %s", f.Broadcast.EventID)
			}
			return seqs, f
		default:
			t.Fatalf("bb got %v", f)
		}
	}
}

// A member who subscribed after the broadcast was created does not take it
// into their inbox, so gets no frame either.
func TestBroadcastOnlySinceSubscribed(t *testing.T) {
	e := newEnv(t, withLive)
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := e.store.Subscribe(context.Background(), "bs", "news", since); err != nil {
		t.Fatal(err)
	}
	c := e.dial("bs", "broadcasts=live")
	readUntilSynced(t, c)
	waitMembers(t, e.gw, "news", "bs")
	if n := e.broadcast("old", "news", "promo", since.Add(-time.Microsecond)); n != 0 {
		t.Fatalf("a broadcast from before the subscription framed %d times", n)
	}
	if n := e.broadcast("new", "news", "promo", since); n != 1 {
		t.Fatalf("a broadcast at the subscription framed %d times, want 1", n)
	}
	if f := read(t, c); f.Type != "broadcast" || f.Broadcast.EventID != "new" {
		t.Fatalf("got %v, want the broadcast new", f)
	}
	// A subscription made while connected counts from when the gateway
	// learnt of it.
	before := time.Now()
	e.gw.MembershipChanged(context.Background(), "bs", "sport", true)
	if n := e.broadcast("sport-old", "sport", "promo", before.Add(-time.Second)); n != 0 {
		t.Fatalf("sport-old framed %d times", n)
	}
	if n := e.broadcast("sport-new", "sport", "promo", time.Now().Add(time.Second)); n != 1 {
		t.Fatalf("sport-new framed %d times, want 1", n)
	}
}

func TestBroadcastFollowsPreferencesChanged(t *testing.T) {
	e := newEnv(t, withLive)
	e.subscribe("bp", "news")
	c := e.dial("bp", "broadcasts=live")
	readUntilSynced(t, c)
	waitMembers(t, e.gw, "news", "bp")

	muted := herald.DefaultPreferences()
	muted.MutedTypes = []string{"promo"}
	e.gw.PreferencesChanged(context.Background(), "bp", muted)
	if n := e.broadcast("m1", "news", "promo", time.Now()); n != 0 {
		t.Fatalf("a muted type framed %d times", n)
	}
	off := herald.DefaultPreferences()
	off.Channels.InApp = false
	e.gw.PreferencesChanged(context.Background(), "bp", off)
	if n := e.broadcast("m2", "news", "release", time.Now()); n != 0 {
		t.Fatalf("with in_app off framed %d times", n)
	}
	e.gw.PreferencesChanged(context.Background(), "bp", herald.DefaultPreferences())
	if n := e.broadcast("m3", "news", "promo", time.Now()); n != 1 {
		t.Fatalf("back to the defaults framed %d times, want 1", n)
	}
	if f := read(t, c); f.Type != "broadcast" || f.Broadcast.EventID != "m3" {
		t.Fatalf("got %v, want m3", f)
	}
	// Someone not connected here: nothing to do, nothing kept.
	e.gw.PreferencesChanged(context.Background(), "nobody", muted)
	if e.gw.hub.shardOf("nobody").mems["nobody"] != nil {
		t.Fatal("an entry was made for a user not connected")
	}
}

// Preferences changed while the user's load runs win over what the load
// read (it may have read the old ones).
func TestBroadcastPreferencesDuringLoad(t *testing.T) {
	var h hub
	h.init(1, true)
	e := &membership{}
	h.shards[0].mems["u"] = e
	muted := &herald.Preferences{MutedTypes: []string{"promo"}, Channels: herald.Channels{InApp: true}}
	s := &h.shards[0]
	s.mu.Lock()
	e.pendingPrefs = newLivePrefs(muted) // what PreferencesChanged does before the load ends
	s.mu.Unlock()
	if !h.install("u", e, nil, defaultLivePrefs) {
		t.Fatal("install refused")
	}
	if e.prefs.takes("promo") || !e.prefs.takes("other") || e.pendingPrefs != nil {
		t.Fatalf("prefs after the load: %+v", e.prefs)
	}
}

// Without Config.Preferences the gateway cannot check what the enricher
// will decide, so it sends nothing early.
func TestBroadcastOffWithoutPreferences(t *testing.T) {
	e := newEnv(t, withMemberships)
	e.subscribe("bo", "news")
	c := e.dial("bo", "broadcasts=live")
	readUntilSynced(t, c)
	waitMembers(t, e.gw, "news", "bo")
	if n := e.broadcast("x", "news", "promo", time.Now()); n != 0 {
		t.Fatalf("framed %d times without preferences", n)
	}
	e.publish("bo", 1)
	nextIsNotification(t, c, 1)
}

func TestBroadcastsParameterRefused(t *testing.T) {
	e := newEnv(t, withLive)
	_, resp, err := e.tryDial("bq", "broadcasts=all")
	if err == nil {
		t.Fatal("upgraded with broadcasts=all")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("response %v", resp)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var m map[string]string
	if json.Unmarshal(body, &m) != nil || m["error"] != `broadcasts must be live or inbox, got "all"` {
		t.Fatalf("body %s", body)
	}
	s, resp := e.trySSE("bq", "broadcasts=LIVE", nil)
	if s != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("SSE with broadcasts=LIVE: %v", resp.Status)
	}
	_ = resp.Body.Close()
}

func TestRecentSetForgetsOldest(t *testing.T) {
	var r recentSet
	for i := range recentBroadcasts {
		if !r.add(string(rune('a'+i%26)) + string(rune(i))) {
			t.Fatalf("id %d taken for a repeat", i)
		}
	}
	first := string(rune('a')) + string(rune(0))
	if r.add(first) {
		t.Fatal("a remembered id was taken for new")
	}
	if !r.add("one more") { // pushes the first out
		t.Fatal("a new id was taken for a repeat")
	}
	if !r.add(first) {
		t.Fatal("the oldest id was not forgotten")
	}
}

// A user with no topic at connection costs no preferences read; once
// subscribed while connected they get frames only when their preferences
// are known (PreferencesChanged, or their next first connection).
func TestBroadcastNoPreferencesReadWithoutTopics(t *testing.T) {
	reads := &countingPrefs{}
	e := newEnv(t, func(c *Config) { withLive(c); reads.inner = c.Store.(*memory.Store); c.Preferences = reads })
	c := e.dial("bn", "broadcasts=live")
	readUntilSynced(t, c)
	eventually(t, "bn's (empty) topics loaded", func() bool { _, ok := e.gw.LocalTopics("bn"); return ok })
	if n := reads.count(); n != 0 {
		t.Fatalf("%d preferences reads for a user with no topic", n)
	}
	e.gw.MembershipChanged(context.Background(), "bn", "news", true)
	if n := e.broadcast("n1", "news", "promo", time.Now().Add(time.Second)); n != 0 {
		t.Fatalf("framed %d times with the preferences unknown", n)
	}
	e.gw.PreferencesChanged(context.Background(), "bn", herald.DefaultPreferences())
	if n := e.broadcast("n2", "news", "promo", time.Now().Add(time.Second)); n != 1 {
		t.Fatalf("framed %d times once the preferences are known, want 1", n)
	}
	if f := read(t, c); f.Type != "broadcast" || f.Broadcast.EventID != "n2" {
		t.Fatalf("got %v, want n2", f)
	}
}

// countingPrefs counts the gateway's preferences reads.
type countingPrefs struct {
	inner Preferences
	mu    sync.Mutex
	n     int
}

func (p *countingPrefs) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return p.inner.GetPreferences(ctx, userID)
}

func (p *countingPrefs) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
