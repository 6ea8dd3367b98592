// Command herald-load measures Herald end to end: it connects WebSocket
// clients to one or more gateways, produces events to Kafka (keyed by user
// id, as upstream services do) at a target rate, and reports the produce
// rate, the delivery rate and the latency from produce to WebSocket receipt.
// It stops by itself when every notification arrived or -timeout passed.
//
//	herald-load -brokers 127.0.0.1:9092 -gateways ws://127.0.0.1:8081,ws://127.0.0.1:8082 \
//	    -jwt-secret … -users 200 -events 20000 -rate 2000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/auth"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers")
	topic := flag.String("topic", "herald.events", "events topic")
	gateways := flag.String("gateways", "ws://127.0.0.1:8080", "gateway base URLs, comma separated")
	secret := flag.String("jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret to mint user tokens")
	users := flag.Int("users", 100, "users (one WebSocket each)")
	events := flag.Int("events", 10000, "events to produce")
	rate := flag.Int("rate", 1000, "target events/s (0: as fast as possible)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after")
	run := flag.String("run", fmt.Sprintf("load-%d", time.Now().UnixNano()), "user id prefix of this run")
	flag.Parse()
	if err := load(*brokers, *topic, strings.Split(*gateways, ","), *secret, *run, *users, *events, *rate, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "herald-load:", err)
		os.Exit(1)
	}
}

type result struct {
	mu        sync.Mutex
	latencies []time.Duration
	received  atomic.Int64
	first     time.Time
	last      time.Time
}

func (r *result) add(d time.Duration, now time.Time) {
	r.mu.Lock()
	r.latencies = append(r.latencies, d)
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	r.mu.Unlock()
	r.received.Add(1)
}

func load(brokers, topic string, gateways []string, secret, run string, users, events, rate int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := &result{latencies: make([]time.Duration, 0, events)}
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, users)
	for i := range users {
		user := fmt.Sprintf("%s-%d", run, i)
		tok, err := auth.Mint([]byte(secret), user, time.Hour)
		if err != nil {
			return err
		}
		url := strings.TrimRight(gateways[i%len(gateways)], "/") + "/v1/ws?token=" + tok + "&after=0"
		c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		if err != nil {
			return fmt.Errorf("dial %s: %w", url, err)
		}
		conns[i] = c
		synced := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			for {
				_, raw, err := c.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				var f struct {
					Type         string `json:"type"`
					Notification struct {
						CreatedAt time.Time `json:"created_at"`
					} `json:"notification"`
				}
				if json.Unmarshal(raw, &f) != nil {
					continue
				}
				switch f.Type {
				case "synced":
					once.Do(func() { close(synced) })
				case "notification":
					res.add(now.Sub(f.Notification.CreatedAt), now)
				}
			}
		}()
		select {
		case <-synced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fmt.Printf("connected %d clients to %d gateway(s)\n", users, len(gateways))

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var produceErr atomic.Value
	start := time.Now()
	for i := range events {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		user := fmt.Sprintf("%s-%d", run, rand.IntN(users))
		v, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("%s-e%d", run, i), "user_id": user, "type": "load",
			"title": "load test", "created_at": time.Now().UTC().Format(time.RFC3339Nano)})
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(user), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	produced := time.Since(start)
	if err, _ := produceErr.Load().(error); err != nil {
		return err
	}
	for res.received.Load() < int64(events) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range conns {
		_ = c.Close() // ends its reader goroutine; the measurement is done
	}
	wg.Wait()

	res.mu.Lock()
	defer res.mu.Unlock()
	lat := res.latencies
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	deliverSpan := res.last.Sub(start)
	fmt.Printf("produced  %d events in %v: %.0f events/s in\n", events, produced.Round(time.Millisecond), float64(events)/produced.Seconds())
	fmt.Printf("delivered %d/%d notifications in %v: %.0f notifications/s\n", len(lat), events, deliverSpan.Round(time.Millisecond), float64(len(lat))/deliverSpan.Seconds())
	fmt.Printf("latency produce→WebSocket: p50 %v  p90 %v  p99 %v  max %v\n", pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	if len(lat) < events {
		return fmt.Errorf("only %d of %d notifications arrived", len(lat), events)
	}
	return nil
}
