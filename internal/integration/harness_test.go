//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/stacktest"
)

// Every connection, the test's own clients and the roles' (through the
// HERALD_* connection variables of stacktest.Env), goes through the
// stack's settings: internal/stacktest reads them from the environment or
// .stack/herald.env (TLS, SASL, passwords).
var (
	heraldBin string
	// keyspace is shared by the whole run (creating one takes seconds);
	// tests keep apart by user ids and topic prefixes.
	keyspace = "herald_it_" + randHex(4)
)

const jwtSecret = "integration-secret-integration-secret-0123456789"
const apiKey = "it-key"

func TestMain(m *testing.M) {
	if err := checkStack(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: the real stack is not reachable: %v\nsettings: %s\n"+
			"start it with `make stack-up` (scripts/stack/stack.sh)\n", err, stacktest.Describe())
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "herald-it-")
	if err != nil {
		panic(err)
	}
	heraldBin = filepath.Join(dir, "herald")
	// HERALD_IT_BIN runs the roles from a binary built elsewhere (another
	// commit's, to compare, or one build shared by repeated runs) instead
	// of building this checkout with -race.
	if bin := os.Getenv("HERALD_IT_BIN"); bin != "" {
		heraldBin = bin
	} else {
		build := exec.Command("go", "build", "-race", "-o", heraldBin, "github.com/heraldhq/herald/cmd/herald")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "integration: building herald:", err)
			os.Exit(1)
		}
	}
	if err := migrate(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: herald migrate:", err)
		os.Exit(1)
	}
	code := m.Run()
	dropKeyspace()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: removing the build dir:", err)
	}
	os.Exit(code)
}

func migrate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, "migrate")
	cmd.Env = append(append(os.Environ(), stacktest.Env()...), "HERALD_CASSANDRA_KEYSPACE="+keyspace)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

func dropKeyspace() {
	cluster := stacktest.CassandraCluster()
	cluster.Timeout = time.Minute
	s, err := cluster.CreateSession()
	if err != nil {
		return
	}
	defer s.Close()
	_ = s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec()
}

// checkStack connects to each dependency with the stack's settings, so
// that a wrong password or CA shows here, once, and not as every role
// failing to start.
func checkStack() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kc, err := kgo.NewClient(stacktest.KafkaOpts()...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer kc.Close()
	if err := kc.Ping(ctx); err != nil {
		return fmt.Errorf("kafka at %v: %w", stacktest.Brokers(), err)
	}
	cluster := stacktest.CassandraCluster()
	cluster.Timeout = 10 * time.Second
	s, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra at %v: %w", stacktest.CassandraHosts(), err)
	}
	s.Close()
	rc := stacktest.RedisClient()
	defer func() { _ = rc.Close() }() // a probe: nothing to report on close
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// env is one isolated Herald deployment on the shared stack: its own topic
// prefix, keyspace and consumer groups.
type env struct {
	t        *testing.T
	id       string
	prefix   string
	keyspace string
	dir      string
	base     []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	id := randHex(4)
	e := &env{t: t, id: id, prefix: "it" + id + ".", keyspace: keyspace, dir: t.TempDir()}
	// The connection variables (addresses, TLS, SASL, passwords), then
	// this deployment's own settings.
	e.base = append(stacktest.Env(),
		"HERALD_CASSANDRA_KEYSPACE="+e.keyspace,
		"HERALD_CASSANDRA_CONSISTENCY=ONE",
		"HERALD_TOPIC_PREFIX="+e.prefix,
		"HERALD_STORE=cassandra",
		"HERALD_JWT_SECRET="+jwtSecret,
		"HERALD_API_KEYS="+apiKey,
		"HERALD_LOG_LEVEL=info",
		"HERALD_SHUTDOWN_TIMEOUT=10s",
	)
	e.run("topics")
	return e
}

// u namespaces a user id to this env: the keyspace is shared by the run,
// so tests (and -count=N repetitions) must not share users.
func (e *env) u(name string) string { return e.id + "." + name }

// run runs a one-shot herald command and fails the test if it fails.
func (e *env) run(args ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...)
	cmd.Env = append(os.Environ(), e.base...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("herald %v: %v\n%s", args, err, out)
	}
}

// proc is a running herald role.
type proc struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	once sync.Once
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// start runs `herald <role>` with extra HERALD_* settings and waits for /readyz.
func (e *env) start(name, role string, extra ...string) *proc {
	e.t.Helper()
	p := e.spawn(name, role, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			e.t.Fatalf("%s exited before ready:\n%s", name, p.tail())
		case <-ctx.Done():
			e.t.Fatalf("%s not ready in time:\n%s", name, p.tail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// spawn starts `herald <role>` with the env's settings, then extra (which
// win: the last value of a variable counts), stopped at the test's end.
func (e *env) spawn(name, role string, extra ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, addr: freeAddr(e.t), log: filepath.Join(e.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd = exec.Command(heraldBin, role)
	p.cmd.Env = append(append(append(os.Environ(), e.base...), "HERALD_ADDR="+p.addr), extra...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Die with the test binary even when it cannot run its cleanups (a
	// panic or a -timeout), so no role outlives the run.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		_ = f.Close() // the log is only read back for failure reports
		close(p.done)
	}()
	e.t.Cleanup(func() { p.stop(e.t) })
	return p
}

func (p *proc) tail() string {
	raw, _ := os.ReadFile(p.log)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(t *testing.T) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop on SIGTERM:\n%s", p.name, p.tail())
		}
	})
}

// kill sends SIGKILL: a crash.
func (p *proc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

func token(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(jwtSecret), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func producer(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(stacktest.KafkaOpts(kgo.ProducerLinger(5 * time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce sends raw event values keyed by user, waiting for the acks.
func (e *env) produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		r.Topic = e.prefix + "events"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func eventRecord(id, user, title string) *kgo.Record {
	v, _ := json.Marshal(map[string]any{"id": id, "user_id": user, "type": "test", "title": title,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano)})
	return &kgo.Record{Key: []byte(user), Value: v}
}

type frame struct {
	Type         string `json:"type"`
	Seq          uint64 `json:"seq"`
	Unread       int64  `json:"unread"`
	Count        int64  `json:"count"`
	Notification struct {
		Seq     uint64    `json:"seq"`
		Prev    uint64    `json:"prev"`
		EventID string    `json:"event_id"`
		Created time.Time `json:"created_at"`
	} `json:"notification"`
	Broadcast struct {
		EventID string `json:"event_id"`
		Topic   string `json:"topic"`
	} `json:"broadcast"`
}

// client is a WebSocket client that reads frames in the background.
type client struct {
	conn   *websocket.Conn
	frames chan frame
	closed chan error
}

func dial(t *testing.T, gw *proc, user, query string) *client {
	t.Helper()
	u := "ws://" + gw.addr + "/v1/ws?token=" + token(t, user) + query
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", gw.name, err, resp)
	}
	cl := &client{conn: c, frames: make(chan frame, 100000), closed: make(chan error, 1)}
	go func() {
		for {
			_, raw, err := c.ReadMessage()
			if err != nil {
				cl.closed <- err
				close(cl.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(raw, &f); err == nil {
				cl.frames <- f
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	return cl
}

// next returns the next frame, failing after a generous guard.
func (c *client) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection closed: %v", <-c.closed)
		}
		return f
	case <-time.After(150 * time.Second):
		// Generous: after a gateway crash its partitions move only once
		// its Kafka session times out (HERALD_SESSION_TIMEOUT, 15 s).
		t.Fatal("no frame within 150s")
	}
	return frame{}
}

// untilSynced reads the replay and returns the notification seqs before synced.
func (c *client) untilSynced(t *testing.T) ([]uint64, frame) {
	t.Helper()
	var seqs []uint64
	for {
		f := c.next(t)
		if f.Type == "synced" {
			return seqs, f
		}
		if f.Type == "notification" {
			seqs = append(seqs, f.Notification.Seq)
		}
	}
}

func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
