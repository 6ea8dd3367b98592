package pushfake

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// Close stops every goroutine Start began and removes its temporary files.
func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	f, err := Start(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr := f.APNsTransport()
	req := rawRequest(t, f, hexToken, `{"aps":{}}`)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	if _, err := os.Stat(f.CAPath); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", f.CAPath, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if _, err := Start(context.Background(), Config{RecordLimit: -1}); err == nil {
		t.Fatal("negative RecordLimit accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Config{}); err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
}
