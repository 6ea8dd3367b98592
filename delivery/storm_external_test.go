package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
)

// stormExternal prepares a storm against the gateways of STORM_GATEWAYS
// (http base URLs, comma separated), other processes whose pids are
// STORM_GATEWAY_PIDS in the same order. The first URL is also the API and
// the metrics of the pipeline that stores the seeded events, as in
// `herald dev`: its data directory STORM_DEV_DIR holds the dev API key and
// JWT secret (dev-secrets.json, app.DevSecrets). Several URLs must share
// that store and secret. Each of n fresh users gets three events through
// POST /v1/events (batches of 500); the storm starts once
// herald_notifications_out_total has grown by 3n (within
// STORM_SEED_TIMEOUT, default 3m). Tokens are HS256 with the dev secret.
func stormExternal(b *testing.B, n int) stormTarget {
	bases := strings.Split(os.Getenv("STORM_GATEWAYS"), ",")
	for i, s := range bases {
		bases[i] = strings.TrimRight(strings.TrimSpace(s), "/")
		if !strings.HasPrefix(bases[i], "http://") && !strings.HasPrefix(bases[i], "https://") {
			b.Fatalf("STORM_GATEWAYS: %q is not an http(s) base URL", s)
		}
	}
	var pids []string
	if s := os.Getenv("STORM_GATEWAY_PIDS"); s != "" {
		pids = strings.Split(s, ",")
		for i := range pids {
			pids[i] = strings.TrimSpace(pids[i])
			if _, err := strconv.Atoi(pids[i]); err != nil {
				b.Fatalf("STORM_GATEWAY_PIDS: %q is not a pid", pids[i])
			}
		}
	}
	if len(pids) != 0 && len(pids) != len(bases) {
		b.Fatalf("STORM_GATEWAY_PIDS has %d pids for %d STORM_GATEWAYS", len(pids), len(bases))
	}
	dir := os.Getenv("STORM_DEV_DIR")
	if dir == "" {
		b.Fatal("STORM_DEV_DIR: the data directory of the herald dev behind STORM_GATEWAYS is required")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "dev-secrets.json"))
	if err != nil {
		b.Fatalf("STORM_DEV_DIR: %v", err)
	}
	var sec struct {
		JWTSecret string `json:"jwt_secret"`
		APIKey    string `json:"api_key"`
	}
	if err := json.Unmarshal(raw, &sec); err != nil || sec.JWTSecret == "" || sec.APIKey == "" {
		b.Fatalf("STORM_DEV_DIR: dev-secrets.json without jwt_secret and api_key (%v)", err)
	}

	api := bases[0]
	client := &http.Client{Timeout: 30 * time.Second}
	stored0 := metricSum(b, client, api, "herald_notifications_out_total")
	run := herald.NewID(time.Now())
	toks := make([]string, n)
	var events []herald.Event
	for i := range toks {
		user := fmt.Sprintf("storm-%s-%d", run, i)
		if toks[i], err = auth.Mint([]byte(sec.JWTSecret), user, 2*time.Hour); err != nil {
			b.Fatal(err)
		}
		for j := range 3 {
			events = append(events, herald.Event{ID: fmt.Sprintf("storm-%s-%d-%d", run, i, j), UserID: user, Type: "storm",
				Title: "storm " + strconv.Itoa(j), CreatedAt: time.Now().UTC()})
		}
		if len(events)+3 > 500 || i == n-1 {
			postEvents(b, client, api, sec.APIKey, events)
			events = events[:0]
		}
	}
	want := stored0 + float64(3*n)
	seedTimeout := envDuration(b, "STORM_SEED_TIMEOUT", 3*time.Minute)
	deadline := time.Now().Add(seedTimeout)
	for {
		got := metricSum(b, client, api, "herald_notifications_out_total")
		if got >= want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("herald_notifications_out_total is %.0f after %s, want %.0f: the seeded events are not all stored", got, seedTimeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Logf("seeded %d users with 3 notifications each through %s", n, api)

	wsURLs := make([]string, len(bases))
	for i, base := range bases {
		wsURLs[i] = "ws" + strings.TrimPrefix(base, "http") + "/v1/ws"
	}
	rssBefore, hwmBefore := make([]int64, len(pids)), make([]int64, len(pids))
	for i, pid := range pids {
		rssBefore[i], hwmBefore[i] = procStatusKiB(pid, "VmRSS"), procStatusKiB(pid, "VmHWM")
	}
	// The sampler scrapes every gateway's /metrics at most every 250 ms
	// (one keep-alive connection each), not on every 50 ms tick.
	var waiting atomic.Int64
	var last time.Time
	var scrapes, scrapeErrs int
	peakHeap := make([]float64, len(bases)) // the most go_memstats_heap_inuse_bytes sampled
	before := make([]map[string]float64, len(bases))
	for i, base := range bases {
		if before[i], err = scrapeMetrics(client, base); err != nil {
			b.Fatal(err)
		}
	}
	return stormTarget{
		wsURLs:  wsURLs,
		toks:    toks,
		waiting: waiting.Load,
		sample: func() {
			if time.Since(last) < 250*time.Millisecond {
				return
			}
			last = time.Now()
			var sum float64
			scrapes++
			for i, base := range bases {
				all, err := scrapeMetrics(client, base)
				if err != nil {
					scrapeErrs++
					return // keep the last sample
				}
				sum += seriesSum(all, "herald_gateway_replays_waiting")
				peakHeap[i] = max(peakHeap[i], seriesSum(all, "go_memstats_heap_inuse_bytes"))
			}
			waiting.Store(int64(sum))
		},
		report: func(b *testing.B, n int) {
			b.Logf("peak replays waiting: the most of %d scrapes of /metrics during the storm (%d failed)", scrapes, scrapeErrs)
			var waits, waited, waitSum, capRefused, rateRefused, open float64
			held := make([]float64, len(bases)) // WebSockets open on each gateway now
			for i, base := range bases {
				after, err := scrapeMetrics(client, base)
				if err != nil {
					b.Errorf("after the storm: %v", err)
					continue
				}
				diff := func(series string) float64 { return seriesSum(after, series) - seriesSum(before[i], series) }
				waits += diff("herald_gateway_replay_wait_seconds_count")
				waited += diff("herald_gateway_replay_wait_seconds_count") - diff(`herald_gateway_replay_wait_seconds_bucket{le="0.001"}`)
				waitSum += diff("herald_gateway_replay_wait_seconds_sum")
				capRefused += diff("herald_http_connections_refused_total")
				held[i] = seriesSum(after, "herald_connections")
				open += held[i]
				rateRefused += diff(`herald_gateway_upgrades_refused_total{reason="rate"}`)
			}
			b.ReportMetric(waited, "replays_waited_over_1ms")
			b.ReportMetric(1000*waitSum/max(waits, 1), "replay_wait_mean_ms")
			if int(open) != n {
				b.Errorf("the gateways hold %.0f WebSocket connections (herald_connections) once the storm is over, want %d", open, n)
			}
			b.Logf("the gateways: %.0f replays, %.0f waited more than 1 ms for a slot (mean wait %.1f ms); %.0f upgrades refused by the bucket, %.0f connections at the --http-max-conns cap",
				waits, waited, 1000*waitSum/max(waits, 1), rateRefused, capRefused)
			for i, pid := range pids {
				hwm, rss := procStatusKiB(pid, "VmHWM"), procStatusKiB(pid, "VmRSS")
				if hwm == 0 {
					b.Errorf("gateway %s (pid %s): no /proc/%s/status, did it die?", bases[i], pid, pid)
					continue
				}
				conns := int(held[i])
				suffix := ""
				if len(pids) > 1 {
					suffix = "_gw" + strconv.Itoa(i)
				}
				b.ReportMetric(float64(hwm)/1024, "gateway_peak_RSS_MiB"+suffix)
				b.ReportMetric(float64(rssBefore[i])/1024, "gateway_RSS_before_MiB"+suffix)
				b.ReportMetric(float64(rss)/1024, "gateway_RSS_after_MiB"+suffix)
				b.ReportMetric(peakHeap[i]/(1<<20), "gateway_peak_heap_MiB"+suffix)
				b.ReportMetric(float64(rss-rssBefore[i])/float64(max(conns, 1)), "gateway_RSS_KiB_per_conn"+suffix)
				b.Logf("gateway %s (pid %s): peak RSS %.0f MiB (%.0f MiB before the storm), peak Go heap in use %.0f MiB (sampled); RSS %.0f MiB before the storm, %.0f MiB with its %d connections (%.1f KiB each)",
					bases[i], pid, float64(hwm)/1024, float64(hwmBefore[i])/1024, peakHeap[i]/(1<<20),
					float64(rssBefore[i])/1024, float64(rss)/1024, conns, float64(rss-rssBefore[i])/float64(max(conns, 1)))
			}
			b.ReportMetric(float64(procStatusKiB("self", "VmHWM"))/1024, "clients_peak_RSS_MiB")
		},
	}
}

// postEvents sends one batch to POST /v1/events, retrying a 503 after its
// Retry-After (the enricher deduplicates a retried batch by event id).
func postEvents(b *testing.B, client *http.Client, api, key string, events []herald.Event) {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		b.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, api+"/v1/events", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("POST %s/v1/events: %v", api, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			return
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < 10:
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(secs, 1)) * time.Second)
		default:
			b.Fatalf("POST %s/v1/events: %d %s", api, resp.StatusCode, msg)
		}
	}
}

// metricSum is scrapeMetric that fails the benchmark on an error.
func metricSum(b *testing.B, client *http.Client, base, name string) float64 {
	v, err := scrapeMetric(client, base, name)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// scrapeMetric sums the samples of the metric name (all label sets) on
// base/metrics; 0 when it has none.
func scrapeMetric(client *http.Client, base, name string) (float64, error) {
	all, err := scrapeMetrics(client, base)
	return seriesSum(all, name), err
}

// seriesSum sums the series of all whose name is name.
func seriesSum(all map[string]float64, name string) float64 {
	var sum float64
	for series, v := range all {
		if rest, ok := strings.CutPrefix(series, name); ok && (rest == "" || rest[0] == '{') {
			sum += v
		}
	}
	return sum
}

// scrapeMetrics reads base/metrics (Prometheus text format, without
// timestamps) into its samples by series, `name{labels}` as written.
func scrapeMetrics(client *http.Client, base string) (map[string]float64, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[cut+1:], 64); err == nil {
			out[line[:cut]] = v
		}
	}
	return out, sc.Err()
}
