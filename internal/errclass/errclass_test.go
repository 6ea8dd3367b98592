package errclass

import (
	"context"
	"errors"
	"fmt"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestOf(t *testing.T) {
	plain := errors.New("connection refused")
	_, invalid := herald.DecodeEvent([]byte(`{"id":"x"}`), herald.Event{}.CreatedAt)
	cases := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassTransient},
		{"unknown", plain, ClassTransient},
		{"marked permanent", Permanent(plain), ClassPermanent},
		{"marked fatal", Fatal(plain), ClassFatal},
		{"marked transient", Transient(plain), ClassTransient},
		{"wrapped mark", fmt.Errorf("append: %w", Permanent(plain)), ClassPermanent},
		{"outermost mark wins", Transient(fmt.Errorf("retry anyway: %w", Permanent(plain))), ClassTransient},
		{"mark over known", Permanent(context.DeadlineExceeded), ClassPermanent},
		{"canceled", fmt.Errorf("get: %w", context.Canceled), ClassTransient},
		{"deadline", context.DeadlineExceeded, ClassTransient},
		{"validation", fmt.Errorf("store: %w", invalid), ClassPermanent},
		{"kerr retriable", fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), ClassTransient},
		{"kerr not retriable", kerr.MessageTooLarge, ClassPermanent},
		{"fenced", fmt.Errorf("end transaction: %w", kerr.ProducerFenced), ClassFatal},
		{"old epoch", kerr.InvalidProducerEpoch, ClassFatal},
		{"pid mapping", kerr.InvalidProducerIDMapping, ClassFatal},
		{"txn id auth", kerr.TransactionalIDAuthorizationFailed, ClassFatal},
		{"client closed", fmt.Errorf("poll: %w", kgo.ErrClientClosed), ClassFatal},
		{"joined, first known wins", errors.Join(plain, kerr.ProducerFenced), ClassFatal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Of(c.err); got != c.want {
				t.Fatalf("Of(%v) = %v, want %v", c.err, got, c.want)
			}
			if got := Retriable(c.err); got != (c.err != nil && c.want == ClassTransient) {
				t.Errorf("Retriable = %v", got)
			}
			if got := IsPermanent(c.err); got != (c.want == ClassPermanent) {
				t.Errorf("IsPermanent = %v", got)
			}
			if got := IsFatal(c.err); got != (c.want == ClassFatal) {
				t.Errorf("IsFatal = %v", got)
			}
		})
	}
}

func TestMarkKeepsChain(t *testing.T) {
	if Permanent(nil) != nil || Fatal(nil) != nil || Transient(nil) != nil {
		t.Fatal("marking nil must give nil")
	}
	base := errors.New("boom")
	err := Permanent(base)
	if !errors.Is(err, base) || err.Error() != "boom" {
		t.Fatalf("mark changed the error: %v", err)
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{ClassTransient: "transient", ClassPermanent: "permanent", ClassFatal: "fatal", Class(9): "unknown"} {
		if c.String() != want {
			t.Errorf("%d: %q", c, c.String())
		}
	}
}
