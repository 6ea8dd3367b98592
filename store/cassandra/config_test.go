package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/heraldhq/herald/internal/retry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseConsistency(t *testing.T) {
	// A slice, not a map: the padded " one " is deliberate (input is trimmed).
	for _, tc := range []struct {
		in   string
		want gocql.Consistency
	}{
		{"", gocql.LocalQuorum}, {"local_quorum", gocql.LocalQuorum}, {"QUORUM", gocql.Quorum},
		{" one ", gocql.One}, {"LOCAL_ONE", gocql.LocalOne}, {"all", gocql.All}, {"EACH_QUORUM", gocql.EachQuorum},
	} {
		got, err := ParseConsistency(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"quorom", "SERIAL", "local_serial", "ANY", "2"} {
		if _, err := ParseConsistency(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseConsistency(%q) = %v, want ErrConfig", bad, err)
		}
	}
	for in, want := range map[string]gocql.Consistency{"": gocql.LocalSerial, "serial": gocql.Serial, "LOCAL_SERIAL": gocql.LocalSerial} {
		got, err := ParseSerialConsistency(in)
		if err != nil || got != want {
			t.Errorf("ParseSerialConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSerialConsistency("QUORUM"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseSerialConsistency(QUORUM) = %v", err)
	}
}

func TestSettle(t *testing.T) {
	st, err := Config{Hosts: []string{"127.0.0.1"}}.settle()
	if err != nil {
		t.Fatal(err)
	}
	if st.Keyspace != DefaultKeyspace || st.cons != gocql.LocalQuorum || st.serial != gocql.LocalSerial ||
		st.Timeout != DefaultTimeout || st.ConnectTimeout != DefaultConnectTimeout || st.NumConns != DefaultNumConns ||
		st.Retention != DefaultRetention || st.ttl != int(DefaultRetention/time.Second) ||
		st.AppendConcurrency != DefaultAppendConcurrency || st.MaxBatch != DefaultMaxBatch ||
		st.MaxRetries != DefaultMaxRetries || st.MaxCASAttempts != DefaultMaxCASAttempts || st.Logger == nil {
		t.Fatalf("defaults: %+v", st)
	}
	st, err = Config{Hosts: []string{"h"}, Retention: -1, MaxRetries: -1}.settle()
	if err != nil || st.ttl != 0 || st.MaxRetries != 0 {
		t.Fatalf("Retention<0 / MaxRetries<0: ttl %d retries %d err %v", st.ttl, st.MaxRetries, err)
	}
	st, err = Config{Hosts: []string{"h"}, Retention: 36 * time.Hour}.settle()
	if err != nil || st.ttl != 36*3600 {
		t.Fatalf("Retention 36h: ttl %d err %v", st.ttl, err)
	}
	for name, c := range map[string]Config{
		"no hosts":        {},
		"empty host":      {Hosts: []string{""}},
		"bad keyspace":    {Hosts: []string{"h"}, Keyspace: "her-ald"},
		"bad consistency": {Hosts: []string{"h"}, Consistency: "MOST"},
		"bad serial":      {Hosts: []string{"h"}, SerialConsistency: "ONE"},
		"tiny retention":  {Hosts: []string{"h"}, Retention: time.Millisecond},
		"huge retention":  {Hosts: []string{"h"}, Retention: 21 * 365 * 24 * time.Hour},
	} {
		if _, err := c.settle(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: settle = %v, want ErrConfig", name, err)
		}
	}
}

type fakeRetryable struct {
	attempts int
	ctx      context.Context
}

func (f *fakeRetryable) Attempts() int                    { return f.attempts }
func (f *fakeRetryable) SetConsistency(gocql.Consistency) {}
func (f *fakeRetryable) GetConsistency() gocql.Consistency {
	return gocql.LocalQuorum
}
func (f *fakeRetryable) Context() context.Context { return f.ctx }

// reqErr is a gocql.RequestError with a given code.
type reqErr int

func (e reqErr) Code() int       { return int(e) }
func (e reqErr) Message() string { return "test" }
func (e reqErr) Error() string   { return fmt.Sprintf("request error %#x", int(e)) }

func TestRetryPolicy(t *testing.T) {
	p := &retryPolicy{retries: 2, backoff: retry.Backoff{Min: time.Microsecond, Max: time.Microsecond}}
	if !p.Attempt(&fakeRetryable{attempts: 1, ctx: context.Background()}) {
		t.Fatal("first retry refused")
	}
	if p.Attempt(&fakeRetryable{attempts: 3, ctx: context.Background()}) {
		t.Fatal("retry beyond the limit allowed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := &retryPolicy{retries: 5, backoff: retry.Backoff{Min: time.Hour, Max: time.Hour}}
	if slow.Attempt(&fakeRetryable{attempts: 1, ctx: ctx}) {
		t.Fatal("retry allowed on a cancelled context")
	}
	for _, c := range []struct {
		err  error
		want gocql.RetryType
	}{
		{reqErr(gocql.ErrCodeSyntax), gocql.Rethrow},
		{reqErr(gocql.ErrCodeInvalid), gocql.Rethrow},
		{reqErr(gocql.ErrCodeUnauthorized), gocql.Rethrow},
		{fmt.Errorf("wrapped: %w", reqErr(gocql.ErrCodeConfig)), gocql.Rethrow},
		{reqErr(gocql.ErrCodeWriteTimeout), gocql.RetryNextHost},
		{reqErr(gocql.ErrCodeReadTimeout), gocql.RetryNextHost},
		{reqErr(gocql.ErrCodeUnavailable), gocql.RetryNextHost},
		{reqErr(gocql.ErrCodeOverloaded), gocql.RetryNextHost},
		{context.Canceled, gocql.Rethrow},
		{errors.New("connection reset"), gocql.RetryNextHost},
	} {
		if got := p.GetRetryType(c.err); got != c.want {
			t.Errorf("GetRetryType(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestMaybeApplied(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{reqErr(gocql.ErrCodeWriteTimeout), true},
		{reqErr(gocql.ErrCodeCASWriteUnknown), true},
		{gocql.ErrTimeoutNoResponse, true},
		{errors.New("connection closed"), true},
		{reqErr(gocql.ErrCodeUnavailable), false},
		{reqErr(gocql.ErrCodeInvalid), false},
		{gocql.ErrNoConnections, false},
		{gocql.ErrSessionClosed, false},
	} {
		if got := maybeApplied(c.err); got != c.want {
			t.Errorf("maybeApplied(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestStatements(t *testing.T) {
	q := newStatements("ks_test")
	// Every field, so that a new statement cannot be left out.
	var texts []string
	v := reflect.ValueOf(q)
	for i := range v.NumField() {
		texts = append(texts, v.Field(i).String())
	}
	for _, s := range texts {
		if s == "" || strings.ContainsAny(s, "{}") {
			t.Fatalf("statement not fully built: %q", s)
		}
		if s != q.ping && !strings.Contains(s, "ks_test.") {
			t.Fatalf("statement does not qualify its table: %q", s)
		}
	}
	// The insert binds as many values as it names columns (plus the TTL).
	names, values, ok := strings.Cut(q.insertNotification, "VALUES")
	if !ok {
		t.Fatalf("insertNotification has no VALUES: %q", q.insertNotification)
	}
	cols := strings.Count(names, ",") + 1
	vals := strings.Count(values, ",") + 1
	if cols != vals {
		t.Fatalf("insertNotification names %d columns, gives %d values", cols, vals)
	}
}

// TestOpenUnreachable: nothing listens on the port; Open fails with the
// driver's error rather than hanging or panicking.
func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Open(ctx, Config{Hosts: []string{addr}, ConnectTimeout: 2 * time.Second, Logger: quiet})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error does not name the host: %v", err)
	}
}

// TestOpenContext: a context that ends while connecting ends Open.
func TestOpenContext(t *testing.T) {
	// A listener that accepts and never answers: the handshake hangs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; _ = c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = Open(ctx, Config{Hosts: []string{l.Addr().String()}, ConnectTimeout: 30 * time.Second, Logger: quiet})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want context.DeadlineExceeded", err)
	}
}
