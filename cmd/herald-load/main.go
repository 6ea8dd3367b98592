// Command herald-load measures Herald end to end: it connects WebSocket
// clients to one or more gateways, produces events to Kafka (keyed by user
// id, as upstream services do) at a target rate, and reports the produce
// rate, the delivery rate and the latency from produce to WebSocket receipt.
//
// It counts deliveries by (user, event id), so a duplicate cannot stand in
// for a lost notification: it stops when every produced event was delivered
// once (then waits -settle for late duplicates), or -drain after the last
// produce was acknowledged, and reports produced, delivered (unique),
// missing, duplicate, unexpected and out-of-order (a user's seq not
// increasing) counts. It exits with status 1 when any notification is
// missing, doubled or unexpected. The last line of its output is a
// machine-readable summary starting with "RESULT".
//
// Kafka is reached with the HERALD_* connection variables of the
// environment (HERALD_BROKERS, HERALD_KAFKA_TLS*, HERALD_KAFKA_SASL, …, as
// for the roles; parsed by internal/stacktest), plaintext 127.0.0.1:9092
// when none is set; -brokers overrides HERALD_BROKERS only.
//
//	set -a; . .stack/herald.env; set +a
//	herald-load -topic bench.events -gateways ws://127.0.0.1:8081,ws://127.0.0.1:8082 \
//	    -jwt-secret … -users 200 -events 20000 -rate 2000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/stacktest"
)

type options struct {
	brokers, topic, secret, run, label string
	gateways                           []string
	users, events, rate                int
	timeout, drain, settle             time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.brokers, "brokers", "", "Kafka brokers, comma separated (default: HERALD_BROKERS)")
	flag.StringVar(&o.topic, "topic", "herald.events", "events topic")
	gateways := flag.String("gateways", "ws://127.0.0.1:8080", "gateway base URLs, comma separated")
	flag.StringVar(&o.secret, "jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret to mint user tokens")
	flag.IntVar(&o.users, "users", 100, "users (one WebSocket each)")
	flag.IntVar(&o.events, "events", 10000, "events to produce")
	flag.IntVar(&o.rate, "rate", 1000, "target events/s (0: as fast as possible)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after, in all")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "after the last produce, wait at most this long for the deliveries")
	flag.DurationVar(&o.settle, "settle", time.Second, "after the last expected delivery, keep listening this long for duplicates")
	flag.StringVar(&o.run, "run", fmt.Sprintf("load-%d", time.Now().UnixNano()), "user id prefix of this run")
	flag.StringVar(&o.label, "label", "", "name of this run in the RESULT line (default: the -run prefix)")
	flag.Parse()
	o.gateways = strings.Split(*gateways, ",")
	if o.label == "" {
		o.label = o.run
	}
	s, err := load(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-load:", err)
		os.Exit(1)
	}
	if !s.ok() {
		fmt.Fprintf(os.Stderr, "herald-load: %d missing, %d duplicate, %d unexpected of %d produced\n",
			s.Missing, s.Duplicate, s.Unexpected, s.Produced)
		os.Exit(1)
	}
}

// kafkaOpts are the franz-go options reaching Kafka as the HERALD_*
// connection variables in the environment say (plaintext 127.0.0.1:9092
// when none is set), with brokers, when given, instead of HERALD_BROKERS.
func kafkaOpts(brokers string) ([]kgo.Opt, error) {
	vars := map[string]string{}
	for _, k := range stacktest.Vars {
		vars[k] = os.Getenv(k)
	}
	if brokers != "" {
		vars[stacktest.VarBrokers] = brokers
	}
	st, err := stacktest.Parse(vars)
	if err != nil {
		return nil, err
	}
	return st.Kafka.Opts()
}

// frame is the part of a gateway frame herald-load reads.
type frame struct {
	Type         string `json:"type"`
	Notification struct {
		Seq       uint64    `json:"seq"`
		EventID   string    `json:"event_id"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"notification"`
}

func load(o options) (summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	opts, err := kafkaOpts(o.brokers)
	if err != nil {
		return summary{}, fmt.Errorf("kafka settings: %w", err)
	}
	t := newTally(o.events)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, 0, o.users)
	defer func() {
		for _, c := range conns {
			_ = c.Close() // ends its reader goroutine; the measurement is done
		}
		wg.Wait()
	}()
	for i := range o.users {
		user := fmt.Sprintf("%s-%d", o.run, i)
		tok, err := auth.Mint([]byte(o.secret), user, time.Hour)
		if err != nil {
			return summary{}, err
		}
		base := strings.TrimRight(o.gateways[i%len(o.gateways)], "/")
		c, _, err := websocket.DefaultDialer.DialContext(ctx, base+"/v1/ws?token="+tok+"&after=0", nil)
		if err != nil {
			return summary{}, fmt.Errorf("dial %s: %w", base, err)
		}
		conns = append(conns, c)
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
				var f frame
				if json.Unmarshal(raw, &f) != nil {
					continue
				}
				switch f.Type {
				case "synced":
					once.Do(func() { close(synced) })
				case "notification":
					n := f.Notification
					t.deliver(user, n.EventID, n.Seq, now.Sub(n.CreatedAt), now)
				}
			}
		}()
		select {
		case <-synced:
		case <-ctx.Done():
			return summary{}, ctx.Err()
		}
	}
	fmt.Printf("connected %d clients to %d gateway(s)\n", o.users, len(o.gateways))

	cl, err := kgo.NewClient(append(opts, kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return summary{}, err
	}
	defer cl.Close()
	var produceErr atomic.Value
	start := time.Now()
	for i := range o.events {
		if o.rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(o.rate))); d > 0 {
				time.Sleep(d)
			}
		}
		user := fmt.Sprintf("%s-%d", o.run, rand.IntN(o.users))
		id := fmt.Sprintf("%s-e%d", o.run, i)
		v, _ := json.Marshal(map[string]any{"id": id, "user_id": user, "type": "load",
			"title": "load test", "created_at": time.Now().UTC().Format(time.RFC3339Nano)})
		t.produce(user, id)
		cl.Produce(ctx, &kgo.Record{Topic: o.topic, Key: []byte(user), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return summary{}, err
	}
	produced := time.Since(start)
	if err, _ := produceErr.Load().(error); err != nil {
		return summary{}, err
	}
	t.seal()

	drained := true
	select {
	case <-t.done:
		select { // late duplicates
		case <-time.After(o.settle):
		case <-ctx.Done():
		}
	case <-time.After(o.drain):
		drained = false
	case <-ctx.Done():
		drained = false
	}
	s := t.summary()
	report(o, s, start, produced, drained)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && s.Missing > 0 {
		return s, fmt.Errorf("timeout %v passed with %d of %d notifications missing", o.timeout, s.Missing, s.Produced)
	}
	return s, nil
}

func report(o options, s summary, start time.Time, produced time.Duration, drained bool) {
	inRate := float64(s.Produced) / produced.Seconds()
	span := s.Last.Sub(start)
	outRate := 0.0
	if s.Delivered > 0 && span > 0 {
		outRate = float64(s.Delivered) / span.Seconds()
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	fmt.Printf("produced  %d events in %v: %.0f events/s in\n", s.Produced, produced.Round(time.Millisecond), inRate)
	fmt.Printf("delivered %d/%d unique notifications in %v: %.0f notifications/s\n", s.Delivered, s.Produced, span.Round(time.Millisecond), outRate)
	fmt.Printf("missing %d  duplicate %d  unexpected %d  out-of-order %d", s.Missing, s.Duplicate, s.Unexpected, s.OutOfOrder)
	if !drained {
		fmt.Printf("  (stopped after the %v drain)", o.drain)
	}
	fmt.Println()
	fmt.Printf("latency produce→WebSocket: p50 %v  p90 %v  p99 %v  max %v\n", r(s.P50), r(s.P90), r(s.P99), r(s.Max))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("RESULT label=%s produced=%d delivered=%d missing=%d duplicate=%d unexpected=%d out_of_order=%d rate_in=%.0f delivered_per_s=%.0f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
		o.label, s.Produced, s.Delivered, s.Missing, s.Duplicate, s.Unexpected, s.OutOfOrder, inRate, outRate,
		ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
}
