package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type comp struct {
	lc     Lifecycle
	closed atomic.Int32
	fail   error
}

func (c *comp) Run(ctx context.Context) error {
	if err := c.lc.Begin(); err != nil {
		return err
	}
	defer c.lc.End()
	ctx, release := c.lc.Context(ctx)
	defer release()
	if c.fail != nil {
		return c.fail
	}
	<-ctx.Done()
	return nil
}

func (c *comp) Close() { c.lc.Stop(); c.closed.Add(1) }

func TestLifecycleRunOnceCloseMany(t *testing.T) {
	c := &comp{}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	for !c.lc.running.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	c.Close()
	c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestStopBeforeRun(t *testing.T) {
	c := &comp{}
	c.Close()
	if err := c.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestContextCanceledByParent(t *testing.T) {
	c := &comp{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSuperviseRebuildsAfterFailure(t *testing.T) {
	var builds atomic.Int32
	var g Group
	stop := Supervise(context.Background(), &g, SuperviseConfig{Name: "t", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, func() (Runner, error) {
		n := builds.Add(1)
		if n < 3 {
			return &comp{fail: errors.New("fatal")}, nil
		}
		return &comp{}, nil
	})
	for builds.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	stop()
	stop()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := builds.Load(); n != 3 {
		t.Fatalf("builds %d, want 3", n)
	}
}

func TestSuperviseBuildError(t *testing.T) {
	var g Group
	want := errors.New("bad config")
	stop := Supervise(context.Background(), &g, SuperviseConfig{}, func() (Runner, error) { return nil, want })
	if err := g.Wait(); !errors.Is(err, want) {
		t.Fatalf("Wait: %v", err)
	}
	stop()
}
