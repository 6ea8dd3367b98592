// Command herald is Herald's one binary. Each subcommand parses only the
// settings it uses (flags, then HERALD_* environment variables, then the
// --config file; see docs/CONFIGURATION.md), and runs the role the app
// package wires.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/app/config"
)

// env is what the commands read the environment with.
type env struct {
	lookup config.LookupEnv
	stdout io.Writer
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) error
}

var commands = []command{
	{"dev", "run every role in one process on the embedded defaults", runDev},
	{"token", "mint a user token: herald token <user_id>", runToken},
	{"send", "post a test event to the HTTP API", runSend},
	{"topics", "create or update Herald's Kafka topics", runTopics},
	{"migrate", "create the Cassandra keyspace and apply the CQL migrations", role("migrate", app.Migrate)},
	{"api", "serve the HTTP API (event intake, inbox, preferences, devices)", role("api", app.RunAPI)},
	{"enricher", "consume herald.events, enrich, store, produce herald.deliveries", role("enricher", app.RunEnricher)},
	{"gateway", "serve WebSockets and deliver herald.deliveries", role("gateway", app.RunGateway)},
	{"pusher", "consume herald.push, send to APNs and FCM (apps: push section of --config)", role("pusher", app.RunPusher)},
	{"dlq", "list or replay herald.events.dlq and herald.push.dlq: herald dlq list|replay --topic events|push", runDLQ},
}

// parse reads a role's settings; ErrHelp after printing the help.
func parse(e env, name, synopsis string, args []string, own func(c *config.Command)) (*config.Config, *config.Command, error) {
	c, err := config.New(name, synopsis)
	if err != nil {
		return nil, nil, err
	}
	if own != nil {
		own(c)
	}
	cfg, err := c.Parse(args, e.lookup, e.stdout)
	return cfg, c, err
}

// role adapts a production role: parse its settings, then run.
func role(name string, run func(ctx context.Context, cfg *config.Config) error) func(context.Context, env, []string) error {
	return func(ctx context.Context, e env, args []string) error {
		cfg, c, err := parse(e, name, "", args, nil)
		if err != nil {
			return err
		}
		if len(c.Args()) > 0 {
			return fmt.Errorf("unexpected argument %q (see herald %s -h)", c.Args()[0], name)
		}
		return run(ctx, cfg)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: herald <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun herald <command> -h for its settings; all of them: docs/CONFIGURATION.md.")
}

func main() {
	os.Exit(dispatch(os.Args[1:], env{lookup: os.LookupEnv, stdout: os.Stdout}, os.Stderr))
}

// dispatch runs the command named by args[0] and returns the exit code,
// so that its deferred signal cleanup runs before main exits.
func dispatch(args []string, e env, stderr io.Writer) int {
	if len(args) < 1 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(e.stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			switch {
			case errors.Is(err, config.ErrHelp):
				return 0
			case err != nil:
				fmt.Fprintln(stderr, "herald "+c.name+":", err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "herald: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
