package apns_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/apns"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// BenchmarkAPNsSend measures pushes/s to the in-tree fake APNs (HTTP/2,
// TLS, JWT checked on every request) through the pooled Sender, and in
// the same run through a naive loop calling apns2.Client.Push one request
// at a time; it reports both and their ratio. Every push must be accepted.
//
//	go test -run '^$' -bench BenchmarkAPNsSend -benchtime 20000x ./delivery/push/apns
func BenchmarkAPNsSend(b *testing.B) {
	f := startFakes(b)
	s := fakeSender(b, f, apns.Config{})
	const batch = 1000
	msgs := make([]push.Message, batch)
	for i := range msgs {
		msgs[i] = fakeMsg(fmt.Sprintf("bench-%d", i))
	}
	// Warm the connections.
	if r := s.Send(context.Background(), msgs[:10]); !r[0].Sent {
		b.Fatalf("warm-up: %+v", r[0])
	}

	naive := naiveClient(b, f)
	n0, err := apns.Notification(f.APNsKeys[0].Topic, &msgs[0])
	if err != nil {
		b.Fatal(err)
	}
	if r, err := naive.Push(n0); err != nil || !r.Sent() {
		b.Fatalf("naive warm-up: %v %+v", err, r)
	}

	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += batch {
		res := s.Send(context.Background(), msgs[:min(batch, b.N-sent)])
		for i := range res {
			if !res[i].Sent {
				b.Fatalf("pooled push %d: %+v", i, res[i])
			}
		}
	}
	pooled := time.Since(start)
	b.StopTimer()

	// The naive worker: one request at a time, same fake, same payloads.
	naiveN := max(b.N/10, 1)
	start = time.Now()
	for i := range naiveN {
		n, err := apns.Notification(f.APNsKeys[0].Topic, &msgs[i%batch])
		if err != nil {
			b.Fatal(err)
		}
		if r, err := naive.Push(n); err != nil || !r.Sent() {
			b.Fatalf("naive push %d: %v %+v", i, err, r)
		}
	}
	naiveD := time.Since(start)

	pooledRate := float64(b.N) / pooled.Seconds()
	naiveRate := float64(naiveN) / naiveD.Seconds()
	b.ReportMetric(pooledRate, "pushes/s")
	b.ReportMetric(naiveRate, "naive-pushes/s")
	b.ReportMetric(pooledRate/naiveRate, "x-naive")
}

// naiveClient is apns2's own token client, trusting the fake's CA.
func naiveClient(b *testing.B, f *pushfake.Fakes) *apns2.Client {
	k := f.APNsKeys[0]
	key, err := token.AuthKeyFromBytes(k.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: k.KeyID, TeamID: k.TeamID})
	c.Host = f.APNsURL
	// apns2's own transport, as a naive worker gets it, told to trust the fake.
	c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = f.TLSConfig() //nolint:staticcheck // apns2 builds an x/net http2.Transport

	b.Cleanup(c.CloseIdleConnections)
	return c
}
