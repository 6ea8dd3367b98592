package fcm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/fcm"
	"github.com/heraldhq/herald/delivery/push/pushfake"
)

// BenchmarkFCMSend measures pushes/s to the in-tree fake FCM (HTTP v1,
// OAuth2 access token checked on every request) through the Sender.
//
//	go test -run '^$' -bench BenchmarkFCMSend -benchtime 20000x ./delivery/push/fcm
func BenchmarkFCMSend(b *testing.B) {
	f, err := pushfake.Start(context.Background(), pushfake.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	acct := f.FCMAccounts[0]
	s, err := fcm.New(context.Background(), fcm.Config{App: push.FCMApp{Credentials: acct.CredentialsJSON, Endpoint: f.FCMURL}})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	msgs := make([]push.Message, batch)
	for i := range msgs {
		msgs[i] = push.Message{
			Device: herald.Device{Platform: "android", Token: fmt.Sprintf("bench-%d", i), AppID: "dev"},
			Notification: herald.Notification{
				ID: "01JNOTIFICATION0000000000D", Seq: uint64(i + 1), EventID: "ev", Type: "bench",
				Priority: herald.PriorityNormal, Title: "Hi", Body: "there",
			},
			ExpiresAt: time.Now().Add(time.Hour),
			Badge:     1,
		}
	}
	if r := s.Send(context.Background(), msgs[:10]); !r[0].Sent {
		b.Fatalf("warm-up: %+v", r[0])
	}
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += batch {
		res := s.Send(context.Background(), msgs[:min(batch, b.N-sent)])
		for i := range res {
			if !res[i].Sent {
				b.Fatalf("push %d: %+v", i, res[i])
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pushes/s")
}
