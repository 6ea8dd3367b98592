package app

import (
	"context"
	"errors"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/delivery/cluster"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/prefcache"
)

// gatewayWithRouting builds the gateway and what the router delivers
// through. With Redis, a Cluster registers presence, forwards to the
// gateways holding a user's sockets and fans unread counts out; without
// it, the gateway itself is the Deliverer (a single gateway). It returns
// the readiness checks it adds and a stop to run after the gateway's
// Shutdown.
func gatewayWithRouting(ctx context.Context, cfg *config.Config, r *role, st store.Store, v *auth.Verifier) (*delivery.Gateway, pipeline.Deliverer, []api.ReadyCheck, func(), error) {
	gcfg := delivery.Config{Store: st, Verifier: v, Logger: r.log, ReplayLimit: cfg.ReplayLimit, AllowedOrigins: cfg.Origins}
	if cfg.RedisURL == "" {
		gw, err := delivery.New(gcfg)
		return gw, gw, nil, func() {}, err
	}
	cl, err := cluster.New(cluster.Config{URL: cfg.RedisURL, GatewayID: cfg.GatewayID, Logger: r.log})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	gcfg.Presence, gcfg.Unread = cl, cl
	gw, err := delivery.New(gcfg)
	if err != nil {
		_ = cl.Close()
		return nil, nil, nil, nil, err
	}
	if err := cl.Attach(gw); err != nil {
		_ = cl.Close()
		return nil, nil, nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	r.g.Go(func() error {
		if err := cl.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cluster.ErrClosed) {
			return err
		}
		return nil
	})
	stop := func() {
		cancel()
		_ = cl.Close()
	}
	return gw, cl, []api.ReadyCheck{{Name: "redis", Check: cl.Ping}}, stop, nil
}

// unreadPublisher is how the API role tells every gateway about read-state
// changes: a publish-only Cluster with Redis, nobody without.
func unreadPublisher(_ context.Context, cfg *config.Config, r *role) (api.UnreadPublisher, func(), error) {
	if cfg.RedisURL == "" {
		return nil, func() {}, nil
	}
	cl, err := cluster.New(cluster.Config{URL: cfg.RedisURL, GatewayID: cfg.GatewayID + "-api", Logger: r.log})
	if err != nil {
		return nil, nil, err
	}
	return cl, func() { _ = cl.Close() }, nil
}

// prefStore wraps st with the Redis preference cache when Redis is set.
func prefStore(cfg *config.Config, st store.Store) (store.Store, func(), error) {
	if cfg.RedisURL == "" {
		return st, func() {}, nil
	}
	pc, err := prefcache.New(prefcache.Config{Store: st, URL: cfg.RedisURL})
	if err != nil {
		return nil, nil, err
	}
	return pc, func() { _ = pc.Close() }, nil
}
