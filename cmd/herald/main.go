// Command herald is Herald's one binary. Each subcommand reads flags (with
// HERALD_* environment defaults), builds its Config and runs; the work is in
// the packages.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"dev", "run every role in one process on the embedded defaults", runDev},
	{"token", "mint a user token: herald token <user_id>", runToken},
	{"send", "post a test event to the HTTP API", runSend},
	{"topics", "create or update Herald's Kafka topics", runTopics},
	{"migrate", "create the Cassandra keyspace and apply the CQL migrations", role(app.Migrate)},
	{"api", "serve the HTTP API (event intake, inbox, preferences, devices)", role(app.RunAPI)},
	{"enricher", "consume herald.events, enrich, store, produce herald.deliveries", role(app.RunEnricher)},
	{"gateway", "serve WebSockets and deliver herald.deliveries", role(app.RunGateway)},
}

// role adapts a production role: parse the shared flags, then run.
func role(run func(ctx context.Context, cfg *config.Config) error) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		fs := flag.NewFlagSet(os.Args[1], flag.ContinueOnError)
		cfg := config.Flags(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		return run(ctx, cfg)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: herald <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun herald <command> -h for its flags.")
}

func main() {
	os.Exit(dispatch())
}

// dispatch runs the command named by os.Args[1] and returns the exit code,
// so that its deferred signal cleanup runs before main exits.
func dispatch() int {
	if len(os.Args) < 2 {
		usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == os.Args[1] {
			if err := c.run(ctx, os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "herald "+c.name+":", err)
				return 1
			}
			return 0
		}
	}
	if os.Args[1] != "-h" && os.Args[1] != "--help" && os.Args[1] != "help" {
		fmt.Fprintf(os.Stderr, "herald: unknown command %q\n\n", os.Args[1])
	}
	usage()
	return 2
}
