package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

// Clients that keep dropping and resuming with after=<last seen>, while
// notifications are published (some lost on the way to the gateway), see
// every seq exactly once, in order, on every connection.
func TestConcurrentResumeStress(t *testing.T) {
	const users, clientsPerUser, perUser = 8, 3, 300
	e := newEnv(t, func(c *Config) { c.ReplayPageSize = 7 })
	// One writer shared by every router goroutine, as the enricher shares
	// the writer of a partition between the users it keys.
	w, err := e.store.Fence(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, users*(clientsPerUser+1))
	for u := range users {
		user := fmt.Sprintf("stress-%d", u)
		wg.Add(1)
		go func() { // the router for this user: in order, some deliveries lost
			defer wg.Done()
			for i := range perUser {
				res, err := w.Append(context.Background(), []herald.Notification{{
					ID: herald.NewID(time.Now()), EventID: fmt.Sprintf("evt-%d", i), Type: "t", UserID: user,
				}})
				if err != nil {
					errs <- err
					return
				}
				n := res[0].Notification
				if i != perUser-1 && rand.IntN(10) == 0 {
					continue
				}
				if _, err := e.gw.Deliver(context.Background(), user, n); err != nil {
					errs <- err
					return
				}
			}
		}()
		for range clientsPerUser {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := resumeClient(e, user, perUser); err != nil {
					errs <- fmt.Errorf("%s: %w", user, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventually(t, "every connection to go", func() bool { return e.gw.ConnCount() == 0 })
}

func resumeClient(e *env, user string, target uint64) error {
	var last uint64
	for session := 0; last < target; session++ {
		q := ""
		if session > 0 {
			q = fmt.Sprintf("after=%d", last)
		} else {
			q = "after=0"
		}
		c, resp, err := e.tryDial(user, q)
		if resp != nil {
			resp.Body.Close()
		}
		if err != nil {
			return err
		}
		synced := false
		budget := 1 + rand.IntN(60)
		for last < target && budget > 0 {
			f, err := tryRead(c)
			if err != nil {
				_ = c.Close()
				return fmt.Errorf("session %d after %d: %w", session, last, err)
			}
			switch f.Type {
			case "notification":
				if f.Notification.Seq != last+1 {
					_ = c.Close()
					return fmt.Errorf("session %d: got seq %d after %d", session, f.Notification.Seq, last)
				}
				last++
				budget--
			case "synced":
				if synced || f.Seq != last {
					_ = c.Close()
					return fmt.Errorf("session %d: synced %d at %d (twice: %v)", session, f.Seq, last, synced)
				}
				synced = true
			}
		}
		_ = c.Close() // the next session resumes after last
	}
	return nil
}
