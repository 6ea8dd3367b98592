package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/apns"
	"github.com/heraldhq/herald/delivery/push/fcm"
	"github.com/heraldhq/herald/pipeline"
)

// PusherOptions are what AddPusher takes besides the Config's push
// section.
type PusherOptions struct {
	// Apps are served besides the push section's apps (herald dev's own
	// app, whose credentials are its fakes'). An id may not repeat one of
	// the section's.
	Apps []push.App
	// RetryTiers are the delays of the retry topics the pusher consumes,
	// which must exist; nil means topics.DefaultPushRetryTiers, the ones
	// `herald topics` creates.
	RetryTiers []time.Duration
	// FetchMaxWait bounds how long one fetch waits for records; 0 means
	// franz-go's default (5s). A partition resumed for a due retry is
	// fetched again only once the fetch in flight returns, so herald dev,
	// whose retries come after about a second, sets it short.
	FetchMaxWait time.Duration
}

// AddPusher runs the pusher (supervised: rebuilt after a fatal error)
// until Shutdown, which stops it after the router and before the sockets
// close; its readiness check, "pusher", passes once it holds its
// assignment. It consumes herald.push and its retry topics and sends through a
// push.Mux over every app's APNs and FCM senders; a credential that does
// not load (a missing .p8, a service account that does not parse) fails
// here, naming the app.
func (p *Process) AddPusher(ctx context.Context, o PusherOptions) error {
	ps := p.cfg.PushSettings()
	apps := slices.Concat(ps.Apps, o.Apps)
	if err := push.ValidateApps(apps); err != nil {
		return err
	}
	st, err := p.Store(ctx)
	if err != nil {
		return err
	}
	opts, err := p.consumerOptions()
	if err != nil {
		return err
	}
	if o.FetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(o.FetchMaxWait))
	}
	log := p.log.With("role", "pusher")
	mux, closeSenders, err := Senders(ctx, apps, log)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.onClose(closeSenders)
	p.mu.Unlock()
	if err := p.serveDLQDepth(log); err != nil {
		return err
	}
	if len(apps) == 0 {
		log.Warn("no push apps configured (push.apps in --config): every push job will be dead-lettered as UnknownApp")
	}
	p.superviseConsumer(phasePusher, "pusher", func() (consumer, error) {
		return pipeline.NewPusher(pipeline.PusherConfig{
			ClientOptions: opts, Topics: p.names, Group: p.groupName("pusher"), InstanceID: p.instanceID(pusherInstanceID()),
			Store: st, Sender: mux, Logger: log, Registerer: p.reg,
			RetryTiers: o.RetryTiers, Backoff: ps.Retry.Backoff(), PushDelay: ps.Delay,
		})
	})
	return nil
}

// Senders builds the Sender of every app: Android devices go to the app's
// FCM sender; iOS devices to its APNs sender, or through FCM when the app
// has no APNs credentials. The returned func closes the senders'
// connections. Errors name the app and the field, as
// "push.apps[com.example].apns.key_file: open …".
func Senders(ctx context.Context, apps []push.App, log *slog.Logger) (push.Mux, func(), error) {
	mux := push.Mux{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i := range apps {
		a := &apps[i]
		l := log.With("app", a.ID)
		if a.FCM != nil {
			s, err := fcm.New(ctx, fcm.Config{App: *a.FCM, Logger: l})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("push.apps[%s].%w", a.ID, err)
			}
			mux[push.Route{AppID: a.ID, Platform: push.PlatformAndroid}] = s
			mux[push.Route{AppID: a.ID, Platform: push.PlatformIOS}] = s
		}
		if a.APNs != nil {
			s, err := apns.New(apns.Config{App: *a.APNs, Logger: l})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("push.apps[%s].%w", a.ID, err)
			}
			closers = append(closers, s.Close)
			mux[push.Route{AppID: a.ID, Platform: push.PlatformIOS}] = s
		}
	}
	return mux, closeAll, nil
}

// RunPusher runs the pusher, serving health and metrics, until ctx ends.
func RunPusher(ctx context.Context, cfg *config.Config) error {
	return run(ctx, cfg, func(p *Process) (http.Handler, error) {
		if err := p.AddPusher(ctx, PusherOptions{}); err != nil {
			return nil, err
		}
		return p.Ops(nil), nil
	})
}
