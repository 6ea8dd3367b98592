package delivery

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

// waitBG runs w.Wait in the background; the channel gets its error once it
// returns.
func waitBG(ctx context.Context, w interface {
	Wait(context.Context, string, uint64, func() bool) error
}, user string, after uint64) <-chan error {
	out := make(chan error, 1)
	go func() { out <- w.Wait(ctx, user, after, func() bool { return false }) }()
	return out
}

// A gateway's long poll is present (presence hook, LocalUsers), is woken by
// Deliver (which counts it as online) and shares the user's presence with
// their connections.
func TestGatewayWaitWokenByDeliver(t *testing.T) {
	h := &recordingHook{}
	e := newEnv(t, func(c *Config) { c.Presence = h })
	ctx := context.Background()
	done := waitBG(ctx, e.gw, "wa", 3)
	eventually(t, "the wait registered", func() bool { return e.gw.Present("wa") })
	if got := h.get(); !slices.Equal(got, []string{"+wa"}) {
		t.Fatalf("presence %v", got)
	}
	if got := localUsers(e.gw); !slices.Equal(got, []string{"wa"}) {
		t.Fatalf("LocalUsers %v", got)
	}
	// A connection of the same user does not fire the hook again.
	c := e.dial("wa", "")
	readUntilSynced(t, c)
	if online, _ := e.gw.Deliver(ctx, "wa", herald.Notification{Seq: 3, Prev: 2}); !online {
		t.Fatal("not online with a connection")
	}
	if n := e.gw.hub.wake("wa", 3); n != 0 {
		t.Fatalf("seq 3 matches %d waiters with after=3", n)
	}
	_ = c.Close()
	eventually(t, "the connection gone", func() bool { return e.gw.ConnCount() == 0 })
	if !e.gw.Present("wa") || len(h.get()) != 1 {
		t.Fatalf("the waiting user left with their connection: %v", h.get())
	}
	if online, _ := e.gw.Deliver(ctx, "wa", herald.Notification{Seq: 4, Prev: 3}); !online {
		t.Fatal("a waiting long poll does not count as online")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the user gone", func() bool { return !e.gw.Present("wa") })
	if got := h.get(); !slices.Equal(got, []string{"+wa", "-wa"}) {
		t.Fatalf("presence %v", got)
	}
}

// ready is checked after the registration; true answers without waiting.
func TestWaitReadyAfterRegistration(t *testing.T) {
	w := NewWaiters(WaitersConfig{})
	var presentInReady bool
	err := w.Wait(context.Background(), "u", 0, func() bool {
		presentInReady = w.Present("u")
		return true
	})
	if err != nil || !presentInReady {
		t.Fatalf("Wait = %v; registered during ready: %v", err, presentInReady)
	}
	if w.Present("u") || w.Waiting() != 0 {
		t.Fatal("still registered")
	}
}

func TestWaitCapsAndShutdown(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxWaits = 2; c.MaxWaitsPerUser = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := waitBG(ctx, e.gw, "u1", 0)
	eventually(t, "u1 waiting", func() bool { return e.gw.waits.Waiting() == 1 && e.gw.Present("u1") })
	var we *WaitError
	if err := e.gw.Wait(ctx, "u1", 0, nil); !errors.As(err, &we) || we.HTTPStatus() != http.StatusTooManyRequests {
		t.Fatalf("second wait of u1: %v", err)
	}
	b := waitBG(ctx, e.gw, "u2", 0)
	eventually(t, "u2 waiting", func() bool { return e.gw.Present("u2") })
	if err := e.gw.Wait(ctx, "u3", 0, nil); !errors.As(err, &we) || we.HTTPStatus() != http.StatusServiceUnavailable {
		t.Fatalf("third wait: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := e.gw.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan error{a, b} {
		if err := <-c; err != nil {
			t.Fatalf("answered by Shutdown: %v", err)
		}
	}
	if err := e.gw.Wait(ctx, "u1", 0, func() bool { t.Error("ready called after Shutdown"); return false }); err != nil {
		t.Fatal(err)
	}
}
