package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDLQHelpListsOnlyItsSettings(t *testing.T) {
	for _, args := range [][]string{{"dlq", "-h"}, {"dlq", "list", "-h"}, {"dlq", "replay", "--help"}} {
		code, out, errOut := run(t, nil, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range []string{"--brokers", "--kafka-sasl", "--kafka-tls-ca", "--topic-prefix", "--log-level", "--topic", "--reason", "--since", "--json"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %s:\n%s", args, want, out)
			}
		}
		for _, absent := range []string{"--addr", "--cassandra", "--redis", "--store", "--jwt-secret", "--session-timeout", "--replication"} {
			if strings.Contains(out, absent) {
				t.Errorf("%v shows %s:\n%s", args, absent, out)
			}
		}
	}
	_, out, _ := run(t, nil, "dlq", "list", "-h")
	if strings.Contains(out, "--dry-run") || !strings.Contains(out, "--limit") {
		t.Errorf("list -h shows replay's flags or lacks its own:\n%s", out)
	}
	_, out, _ = run(t, nil, "dlq", "replay", "-h")
	if !strings.Contains(out, "--dry-run") || strings.Contains(out, "--limit") {
		t.Errorf("replay -h lacks --dry-run or shows list's flags:\n%s", out)
	}
}

func TestDLQFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "usage: herald dlq list|replay"},
		{[]string{"dlq", "purge"}, `unknown subcommand "purge"`},
		{[]string{"dlq", "list"}, `--topic="": want events or push`},
		{[]string{"dlq", "list", "--topic", "pushes"}, `--topic="pushes"`},
		{[]string{"dlq", "list", "--topic", "push", "--since", "-1h"}, "--since=-1h0m0s"},
		{[]string{"dlq", "list", "--topic", "push", "--limit", "0"}, "--limit=0"},
		{[]string{"dlq", "replay", "--topic", "push", "--max-records", "0"}, "--max-records=0"},
		{[]string{"dlq", "replay", "--topic", "push", "--since", "soon"}, `invalid value "soon" for flag -since`},
		{[]string{"dlq", "replay", "--topic", "push", "extra"}, `unexpected argument "extra"`},
	} {
		code, _, errOut := run(t, nil, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestDLQListAndReplayOnKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := topics.Apply(ctx, kadm.NewClient(cl), "acme.", -1); err != nil {
		t.Fatal(err)
	}
	codec := pipeline.NewCodec(topics.WithPrefix("acme."))
	src := &kgo.Record{Topic: "acme.events", Key: []byte("alice"), Value: []byte(`{"id":"e1","user_id":"alice"}`), Offset: 7}
	if err := cl.ProduceSync(ctx, codec.EventDLQ(src, errors.New("type: is required"))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HERALD_BROKERS": strings.Join(c.ListenAddrs(), ","), "HERALD_TOPIC_PREFIX": "acme.", "HERALD_LOG_LEVEL": "warn"}

	code, out, errOut := run(t, env, "dlq", "list", "--topic", "events")
	if code != 0 || !strings.Contains(out, "type: is required") || !strings.Contains(out, "alice") ||
		!strings.Contains(out, "1 pending dead letters in acme.events.dlq match") {
		t.Fatalf("list: exit %d\n%s\nstderr %s", code, out, errOut)
	}
	code, out, errOut = run(t, env, "dlq", "list", "--topic", "events", "--json")
	var l struct {
		Topic   string `json:"topic"`
		Matched int    `json:"matched"`
		Entries []struct {
			EventID string `json:"event_id"`
		} `json:"entries"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || l.Topic != "acme.events.dlq" || l.Matched != 1 || l.Entries[0].EventID != "e1" {
		t.Fatalf("list --json: exit %d\n%s\nstderr %s", code, out, errOut)
	}
	code, out, _ = run(t, env, "dlq", "replay", "--topic", "events", "--dry-run")
	if code != 0 || !strings.Contains(out, "would replay 1 dead letters") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	code, out, errOut = run(t, env, "dlq", "replay", "--topic", "events", "--reason", "TYPE")
	if code != 0 || !strings.Contains(out, "replayed 1 dead letters") || !strings.Contains(out, "-> acme.events") {
		t.Fatalf("replay: exit %d\n%s\nstderr %s", code, out, errOut)
	}
	code, out, _ = run(t, env, "dlq", "replay", "--topic", "events")
	if code != 0 || !strings.Contains(out, "replayed 0 dead letters") {
		t.Fatalf("second replay: exit %d\n%s", code, out)
	}
}
