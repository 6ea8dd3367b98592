//go:build unix

package pushfake

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
)

// BenchmarkAPNsFake measures the fake APNs's throughput with the real
// apns2 client: concurrent pushes over one HTTP/2 connection (as a pusher
// sends them), reported as pushes/s.
//
//	go test -run '^$' -bench APNsFake -benchtime 100000x ./delivery/push/pushfake
func BenchmarkAPNsFake(b *testing.B) {
	f := startFakes(b, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := apnsClient(b, f, f.APNsKeys[0])
	var failed atomic.Int64
	var seq atomic.Int64
	cpu0 := processCPU(b)
	b.SetParallelism(64) // 64 × GOMAXPROCS pushes in flight
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := note("bench-" + strconv.FormatInt(seq.Add(1)%1000, 10))
			res, err := c.Push(n)
			if err != nil || res.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
	// CPU per push, client and server together: what the machine can do
	// is about GOMAXPROCS / this, whatever else shares it while measuring.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/push")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d pushes failed", n)
	}
}

// BenchmarkAPNsFakeSerial is the naive worker: one apns2.Push at a time.
func BenchmarkAPNsFakeSerial(b *testing.B) {
	f := startFakes(b, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := apnsClient(b, f, f.APNsKeys[0])
	b.ResetTimer()
	for range b.N {
		res, err := c.Push(note(hexToken))
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
}

var _ = apns2.PriorityHigh

// processCPU is the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFCMFake measures the fake FCM with the firebase SDK's SendEach
// (one HTTP v1 request per message, 50 at a time), reported as messages/s.
func BenchmarkFCMFake(b *testing.B) {
	f := startFakes(b, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	mc := fcmClient(b, f, f.FCMAccounts[0].CredentialsPath, DevProjectID)
	const batch = 500
	msgs := make([]*messaging.Message, batch)
	for i := range msgs {
		msgs[i] = fcmMsg("bench-" + strconv.Itoa(i))
	}
	cpu0 := processCPU(b)
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		n := min(batch, b.N-sent)
		br, err := mc.SendEach(context.Background(), msgs[:n])
		if err != nil || br.FailureCount > 0 {
			b.Fatalf("SendEach: %v, %+v", err, br)
		}
		sent += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// BenchmarkAPNsHandler is the fake APNs's handler alone (no TLS, no
// HTTP/2 framing): its share of a push's cost.
func BenchmarkAPNsHandler(b *testing.B) {
	f := startFakes(b, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bearer := devBearer(b, f, time.Now())
	body := []byte(`{"aps":{"alert":{"title":"Hi","body":"there"}},"herald_id":"n1"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &recorderWriter{header: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "/3/device/"+hexToken, bytes.NewReader(body))
			req.Header.Set("Authorization", "bearer "+bearer)
			req.Header.Set("Apns-Topic", DevTopic)
			req.Header.Set("Apns-Push-Type", "alert")
			req.Header.Set("Apns-Priority", "10")
			clear(w.header)
			w.body.Reset()
			f.apns.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d: %s", w.status, w.body.Bytes())
			}
		}
	})
}
