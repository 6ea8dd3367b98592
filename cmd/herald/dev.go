package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/topics"
)

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	cfg := config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := cfg.Logger()
	d, err := app.StartDev(ctx, app.DevConfig{
		DataDir: cfg.DataDir, Addr: cfg.Addr, KafkaPort: cfg.KafkaPort, TopicPrefix: cfg.TopicPrefix,
		ReplayLimit: cfg.ReplayLimit, Origins: cfg.Origins, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Println(d.Banner(os.Args[0]))
	<-ctx.Done()
	log.Info("shutting down")
	// ctx is done by now; shutdown keeps its values but not its cancellation.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return d.Shutdown(sctx)
}

func runToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	cfg := config.Flags(fs)
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
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
	tok, err := auth.Mint(secret, fs.Arg(0), *ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func runSend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	cfg := config.Flags(fs)
	url := fs.String("url", "http://localhost:8080", "Herald API base URL")
	user := fs.String("user", "", "recipient user id (required)")
	typ := fs.String("type", "test", "event type")
	title := fs.String("title", "Hello from herald send", "title")
	body := fs.String("body", "", "body")
	id := fs.String("id", "", "event id (default: a fresh one)")
	priority := fs.String("priority", "normal", "high, normal or low")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("--user is required")
	}
	key := ""
	if len(cfg.APIKeys) > 0 {
		key = cfg.APIKeys[0]
	} else if s, err := app.ReadDevSecrets(cfg.DataDir); err == nil {
		key = s.APIKey
	} else {
		return fmt.Errorf("no --api-keys and no dev secrets in %s: %w", cfg.DataDir, err)
	}
	if *id == "" {
		*id = fmt.Sprintf("send-%d", time.Now().UnixNano())
	}
	ev, _ := json.Marshal(map[string]any{"id": *id, "user_id": *user, "type": *typ, "title": *title, "body": *body, "priority": *priority})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*url, "/")+"/v1/events", bytes.NewReader(ev))
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
	fmt.Printf("%s %s", resp.Status, out)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("event refused: %s", resp.Status)
	}
	return nil
}

func runTopics(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("topics", flag.ContinueOnError)
	cfg := config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl, err := kgo.NewClient(pipeline.ClientOptions(cfg.Brokers)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	changes, err := topics.Ensure(ctx, kadm.NewClient(cl), topics.Specs(topics.WithPrefix(cfg.TopicPrefix)), int16(cfg.Replication))
	for _, c := range changes {
		fmt.Println(c)
	}
	if err == nil && len(changes) == 0 {
		fmt.Println("topics up to date")
	}
	return err
}
