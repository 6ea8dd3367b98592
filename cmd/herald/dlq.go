package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/pipeline/dlq"
	"github.com/heraldhq/herald/topics"
)

const dlqSynopsis = "herald dlq list|replay --topic events|push [flags]"

// dlqFlags are the flags of herald dlq list and replay.
type dlqFlags struct {
	topic, reason *string
	since         *time.Duration
	json          *bool
	// list
	limit *int
	all   *bool
	// replay
	dryRun     *bool
	maxRecords *int
}

func (f *dlqFlags) register(fs *flag.FlagSet, sub string) {
	f.topic = fs.String("topic", "", "dead-letter topic: events (herald.events.dlq) or push (herald.push.dlq); required")
	f.reason = fs.String("reason", "", "only dead letters whose reason contains this (case-insensitive)")
	f.since = fs.Duration("since", 0, "only dead letters at most this old, e.g. 24h (0: any age)")
	f.json = fs.Bool("json", false, "print JSON instead of a table")
	if sub != "replay" {
		f.limit = fs.Int("limit", 100, "list: show at most this many, the newest (the summary counts them all)")
		f.all = fs.Bool("all", false, "list: include the dead letters a replay already handled")
	}
	if sub != "list" {
		f.dryRun = fs.Bool("dry-run", false, "replay: print what would be replayed, change nothing")
		f.maxRecords = fs.Int("max-records", 500, "replay: dead letters per transaction")
	}
}

// runDLQ is herald dlq list|replay: flags → dlq.Config → the package.
func runDLQ(ctx context.Context, e env, args []string) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	synopsis := dlqSynopsis
	switch sub {
	case "list", "replay":
		synopsis = "herald dlq " + sub + " --topic events|push [flags]"
	case "":
	default:
		return fmt.Errorf("unknown subcommand %q: want list or replay (see herald dlq -h)", sub)
	}
	var f dlqFlags
	cfg, c, err := parse(e, "dlq", synopsis, args, func(c *config.Command) { f.register(c.FlagSet(), sub) })
	if err != nil {
		return err
	}
	if len(c.Args()) > 0 {
		return fmt.Errorf("unexpected argument %q (see herald dlq -h)", c.Args()[0])
	}
	if sub == "" {
		return errors.New("usage: " + dlqSynopsis + " (see herald dlq -h)")
	}
	kind, err := dlq.ParseKind(*f.topic)
	if err != nil {
		return fmt.Errorf("--topic=%q: want events or push", *f.topic)
	}
	if *f.since < 0 {
		return fmt.Errorf("--since=%s: must be 0 (any age) or more", *f.since)
	}
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return err
	}
	dc := dlq.Config{
		ClientOptions: opts,
		Topics:        topics.WithPrefix(cfg.TopicPrefix),
		Kind:          kind,
		Filter:        dlq.Filter{Reason: *f.reason, Since: *f.since},
		Logger:        cfg.Logger(),
	}
	if sub == "list" {
		if *f.limit < 1 {
			return fmt.Errorf("--limit=%d: must be at least 1", *f.limit)
		}
		return dlqList(ctx, e.stdout, dc, f)
	}
	if *f.maxRecords < 1 {
		return fmt.Errorf("--max-records=%d: must be at least 1", *f.maxRecords)
	}
	return dlqReplay(ctx, e.stdout, dc, f)
}

func dlqList(ctx context.Context, w io.Writer, dc dlq.Config, f dlqFlags) error {
	l, err := dlq.List(ctx, dc, dlq.ListOptions{Limit: *f.limit, All: *f.all})
	if err != nil {
		return err
	}
	if *f.json {
		return writeJSON(w, struct {
			Topic string `json:"topic"`
			*dlq.Listing
		}{l.Topic.DLQ, l})
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := ""
	if *f.all {
		state = "\tSTATE"
	}
	fmt.Fprintln(tw, "OFFSET\tAGE\tREASON\tUSER\tEVENT ID\tATTEMPTS"+state)
	for _, en := range l.Entries {
		st := ""
		if *f.all {
			st = "\thandled"
			if en.Pending {
				st = "\tpending"
			}
		}
		fmt.Fprintf(tw, "%d/%d\t%s\t%s\t%s\t%s\t%d%s\n", en.Partition, en.Offset, age(now, en.Time),
			cell(en.Reason, 60), cell(en.UserID, 40), cell(en.EventID, 40), en.Attempts, st)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	what := "pending dead letters"
	if *f.all {
		what = "dead letters"
	}
	_, err = fmt.Fprintf(w, "%d %s in %s match (%d shown, %d read)%s\n",
		l.Matched, what, l.Topic.DLQ, len(l.Entries), l.Read, reasons(l.ByReason))
	return err
}

func dlqReplay(ctx context.Context, w io.Writer, dc dlq.Config, f dlqFlags) error {
	verb := "replayed"
	if *f.dryRun {
		verb = "would replay"
	}
	var lines []dlq.Entry
	opt := dlq.ReplayOptions{DryRun: *f.dryRun, MaxRecords: *f.maxRecords, OnReplayed: func(en dlq.Entry) {
		if *f.json {
			lines = append(lines, en)
			return
		}
		fmt.Fprintf(w, "%s %d/%d -> %s user=%s event=%s reason=%q\n", verb, en.Partition, en.Offset,
			en.SourceTopic, cell(en.UserID, 40), cell(en.EventID, 40), cell(en.Reason, 120))
	}}
	if *f.json {
		// Bounded by the replay's own output; a machine asked for it.
		opt.OnReplayed = func(en dlq.Entry) {
			if len(lines) < 10000 {
				lines = append(lines, en)
			}
		}
	}
	res, err := dlq.Replay(ctx, dc, opt)
	if *f.json {
		if jerr := writeJSON(w, struct {
			DryRun bool `json:"dry_run"`
			dlq.Result
			Entries []dlq.Entry `json:"entries"`
		}{*f.dryRun, res, lines}); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprintf(w, "%s %d dead letters to their source topics", verb, res.Replayed)
		if res.CarriedOver > 0 {
			fmt.Fprintf(w, "; %d not matching carried over, still pending", res.CarriedOver)
		}
		fmt.Fprintln(w, reasons(res.ByReason))
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted after %d committed; run the same command again to resume: %w", res.Replayed, err)
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reasons is the summary of counts by reason: ": 3 × a, 2 × b".
func reasons(rc []dlq.ReasonCount) string {
	if len(rc) == 0 {
		return ""
	}
	parts := make([]string, 0, min(len(rc), 10)+1)
	for i, r := range rc {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("%d more reasons", len(rc)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("%d × %s", r.Count, cell(r.Reason, 80)))
	}
	return ": " + strings.Join(parts, ", ")
}

// age shows how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return now.Sub(t).Round(time.Second).String()
}

// cell bounds s for a table and keeps it on one line.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
