package topics

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newAdmin(t *testing.T, opts ...kfake.Opt) *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWithPrefix(t *testing.T) {
	n := WithPrefix("")
	want := Names{"herald.events", "herald.events.dlq", "herald.deliveries", "herald.push", "herald.push.dlq", "herald.fanout"}
	if n != want {
		t.Fatalf("WithPrefix(\"\") = %+v, want %+v", n, want)
	}
	if got := WithPrefix("acme.").Deliveries; got != "acme.deliveries" {
		t.Fatalf("prefix acme.: deliveries = %q", got)
	}
	if !(Names{}).IsZero() || n.IsZero() {
		t.Fatal("IsZero")
	}
}

func TestApplyTwice(t *testing.T) {
	adm := newAdmin(t)
	ctx := ctxT(t)
	specs := Specs(WithPrefix(""))

	changes, err := Ensure(ctx, adm, specs, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != len(specs) {
		t.Fatalf("first run: %d changes, want %d creations: %v", len(changes), len(specs), changes)
	}
	for _, c := range changes {
		if c.Action != ActionCreated {
			t.Fatalf("first run: unexpected change %v", c)
		}
	}

	// The second run finds everything in place.
	changes, err = Ensure(ctx, adm, specs, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Fatalf("second run changed %v", changes)
	}
	if err := Apply(ctx, adm, "", -1); err != nil {
		t.Fatal(err)
	}

	var specNames []string
	for _, s := range specs {
		specNames = append(specNames, s.Name)
	}
	details, err := adm.ListTopics(ctx, specNames...)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, specNames...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if got := len(details[s.Name].Partitions); got != int(s.Partitions) {
			t.Errorf("%s: %d partitions, want %d", s.Name, got, s.Partitions)
		}
		rc, err := configs.On(s.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]string{}
		for _, c := range rc.Configs {
			have[c.Key] = c.MaybeValue()
		}
		if got, want := have["retention.ms"], s.Configs(-1)["retention.ms"]; got != want {
			t.Errorf("%s: retention.ms = %q, want %q", s.Name, got, want)
		}
		if have["cleanup.policy"] != "delete" {
			t.Errorf("%s: cleanup.policy = %q", s.Name, have["cleanup.policy"])
		}
	}
}

func TestApplyConvergesExisting(t *testing.T) {
	n := WithPrefix("x.")
	adm := newAdmin(t, kfake.SeedTopics(3, n.Events))
	ctx := ctxT(t)

	// Drift: someone shortened the retention by hand.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1000")}}, n.Events); err != nil {
		t.Fatal(err)
	}

	changes, err := Ensure(ctx, adm, Specs(n), 1)
	if err != nil {
		t.Fatal(err)
	}
	var grew, fixed int
	for _, c := range changes {
		if c.Topic == n.Events && c.Action == ActionAddPartitions {
			grew++
		}
		if c.Topic == n.Events && c.Action == ActionAlterConfig {
			fixed++
		}
	}
	if grew != 1 || fixed == 0 {
		t.Fatalf("changes %v: want partitions added and retention restored on %s", changes, n.Events)
	}

	details, err := adm.ListTopics(ctx, n.Events)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[n.Events].Partitions); got != 12 {
		t.Fatalf("%s has %d partitions, want 12", n.Events, got)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, n.Events)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "retention.ms" && c.MaybeValue() != "604800000" {
			t.Fatalf("retention.ms = %s after Ensure", c.MaybeValue())
		}
	}

	if changes, err := Ensure(ctx, adm, Specs(n), 1); err != nil || len(changes) != 0 {
		t.Fatalf("second run: changes %v, err %v", changes, err)
	}
}

func TestSpecConfigsMinInsync(t *testing.T) {
	s := Specs(WithPrefix(""))[0]
	if _, ok := s.Configs(-1)["min.insync.replicas"]; ok {
		t.Error("min.insync.replicas set with broker-default replication")
	}
	if _, ok := s.Configs(2)["min.insync.replicas"]; ok {
		t.Error("min.insync.replicas=2 set with replication 2 (no room for a replica down)")
	}
	if got := s.Configs(3)["min.insync.replicas"]; got != "2" {
		t.Errorf("replication 3: min.insync.replicas = %q, want 2", got)
	}
}

func TestEnsureRejectsBadReplication(t *testing.T) {
	adm := newAdmin(t)
	if _, err := Ensure(ctxT(t), adm, Specs(WithPrefix("")), 0); err == nil {
		t.Fatal("replication 0 accepted")
	}
}

func TestPushRetryTopics(t *testing.T) {
	n := WithPrefix("")
	for d, want := range map[time.Duration]string{
		5 * time.Second:         "herald.push.retry.5s",
		30 * time.Second:        "herald.push.retry.30s",
		5 * time.Minute:         "herald.push.retry.5m",
		2 * time.Hour:           "herald.push.retry.2h",
		1500 * time.Millisecond: "herald.push.retry.1500ms",
	} {
		if got := n.PushRetry(d); got != want {
			t.Errorf("PushRetry(%v) = %q, want %q", d, got, want)
		}
	}
	specs := PushRetrySpecs(n, []time.Duration{time.Second, time.Second, 5 * time.Second})
	if len(specs) != 2 || specs[0].Name != "herald.push.retry.1s" || specs[1].Name != "herald.push.retry.5s" {
		t.Fatalf("duplicate tiers: %+v", specs)
	}
	var names []string
	for _, s := range Specs(n) {
		names = append(names, s.Name)
	}
	for _, d := range DefaultPushRetryTiers {
		if !slices.Contains(names, n.PushRetry(d)) {
			t.Errorf("Specs lacks the retry topic of tier %v: %v", d, names)
		}
	}
}
