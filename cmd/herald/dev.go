package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/heraldhq/herald/app"
	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/auth"
)

func runDev(ctx context.Context, e env, args []string) error {
	cfg, _, err := parse(e, "dev", "", args, nil)
	if err != nil {
		return err
	}
	log := cfg.Logger()
	dc := app.DevConfigFrom(cfg)
	dc.Logger = log
	d, err := app.StartDev(ctx, dc)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, d.Banner(os.Args[0]))
	<-ctx.Done()
	log.Info("shutting down")
	// ctx is done by now; shutdown keeps its values but not its cancellation.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return d.Shutdown(sctx)
}

func runToken(_ context.Context, e env, args []string) error {
	var ttl *time.Duration
	cfg, c, err := parse(e, "token", "herald token [flags] <user_id>", args, func(c *config.Command) {
		ttl = c.FlagSet().Duration("ttl", 24*time.Hour, "token lifetime")
	})
	if err != nil {
		return err
	}
	if len(c.Args()) != 1 {
		return errors.New("usage: herald token [flags] <user_id>")
	}
	secret := []byte(cfg.JWTSecret)
	if cfg.JWTSecret == "" {
		s, err := app.ReadDevSecrets(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("no --jwt-secret and no dev secrets in %s (start `herald dev` once): %w", cfg.DataDir, err)
		}
		secret = []byte(s.JWTSecret)
	}
	tok, err := auth.Mint(secret, c.Args()[0], *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

// sendFlags are herald send's own flags.
type sendFlags struct {
	url, user, users, audience, typ, title, body, id, priority *string
}

// address returns the event's addressing fields from exactly one of
// --user, --users (comma-separated) and --audience; the API validates
// the ids themselves.
func (f *sendFlags) address() (map[string]any, error) {
	var given []string
	for _, g := range []struct {
		name string
		v    *string
	}{{"--user", f.user}, {"--users", f.users}, {"--audience", f.audience}} {
		if *g.v != "" {
			given = append(given, g.name)
		}
	}
	switch len(given) {
	case 0:
		return nil, errors.New("one of --user, --users or --audience is required")
	case 1:
	default:
		return nil, fmt.Errorf("%s and %s are mutually exclusive: give one of --user, --users or --audience", given[0], given[1])
	}
	switch {
	case *f.user != "":
		return map[string]any{"user_id": *f.user}, nil
	case *f.audience != "":
		return map[string]any{"audience": *f.audience}, nil
	}
	var ids []string
	for id := range strings.SplitSeq(*f.users, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--users=%q: no user ids (want a comma-separated list)", *f.users)
	}
	return map[string]any{"user_ids": ids}, nil
}

func runSend(ctx context.Context, e env, args []string) error {
	var f sendFlags
	cfg, c, err := parse(e, "send", "herald send [flags] --user <user_id> | --users <id,id,…> | --audience <topic>", args, func(c *config.Command) {
		fs := c.FlagSet()
		f.url = fs.String("url", "http://localhost:8080", "Herald API base URL")
		f.user = fs.String("user", "", "recipient user id (one of --user, --users, --audience is required)")
		f.users = fs.String("users", "", "comma-separated recipient user ids, at most 1000 (instead of --user)")
		f.audience = fs.String("audience", "", "topic whose subscribers receive the event (instead of --user)")
		f.typ = fs.String("type", "test", "event type")
		f.title = fs.String("title", "Hello from herald send", "title")
		f.body = fs.String("body", "", "body")
		f.id = fs.String("id", "", "event id (default: a fresh one)")
		f.priority = fs.String("priority", "normal", "high, normal or low")
	})
	if err != nil {
		return err
	}
	if len(c.Args()) > 0 {
		return fmt.Errorf("unexpected argument %q (see herald send -h)", c.Args()[0])
	}
	ev, err := f.address()
	if err != nil {
		return err
	}
	key := ""
	if len(cfg.APIKeys) > 0 {
		key = cfg.APIKeys[0]
	} else if s, err := app.ReadDevSecrets(cfg.DataDir); err == nil {
		key = s.APIKey
	} else {
		return fmt.Errorf("no --api-keys and no dev secrets in %s: %w", cfg.DataDir, err)
	}
	if *f.id == "" {
		*f.id = fmt.Sprintf("send-%d", time.Now().UnixNano())
	}
	for k, v := range map[string]string{"id": *f.id, "type": *f.typ, "title": *f.title, "body": *f.body, "priority": *f.priority} {
		ev[k] = v
	}
	raw, _ := json.Marshal(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*f.url, "/")+"/v1/events", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(e.stdout, "%s %s", resp.Status, out)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("event refused: %s", resp.Status)
	}
	return nil
}

func runTopics(ctx context.Context, e env, args []string) error {
	cfg, _, err := parse(e, "topics", "", args, nil)
	if err != nil {
		return err
	}
	changes, err := app.Topics(ctx, cfg)
	for _, c := range changes {
		fmt.Fprintln(e.stdout, c)
	}
	if err == nil && len(changes) == 0 {
		fmt.Fprintln(e.stdout, "topics up to date")
	}
	return err
}
