package app

import (
	"context"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store"
)

// gatewayWithRouting builds the gateway and what the router delivers
// through. Without Redis the gateway itself is the Deliverer (one gateway).
func gatewayWithRouting(ctx context.Context, cfg *config.Config, r *role, st store.Store, v *auth.Verifier) (*delivery.Gateway, pipeline.Deliverer, func(), error) {
	gw, err := delivery.New(delivery.Config{
		Store: st, Verifier: v, Logger: r.log, ReplayLimit: cfg.ReplayLimit, AllowedOrigins: cfg.Origins,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return gw, gw, func() {}, nil
}

// unreadPublisher is how the API role tells gateways about read-state
// changes: nobody without Redis.
func unreadPublisher(ctx context.Context, cfg *config.Config, r *role) (api.UnreadPublisher, func(), error) {
	return nil, func() {}, nil
}

// prefStore wraps st with the Redis preference cache when Redis is set.
func prefStore(cfg *config.Config, st store.Store) (store.Store, func(), error) {
	return st, func() {}, nil
}
