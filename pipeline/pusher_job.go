package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// pushTask is one job of a partition's batch.
type pushTask struct {
	rec   *kgo.Record
	job   herald.PushJob
	jobID string
	meta  pushMeta
	now   time.Time
	// msgs are the messages to send and keys their circuits.
	msgs    []push.Message
	keys    []circuitKey
	results []push.Result
	// deferred are the tokens held back by an open circuit, for wait.
	deferred []string
	wait     time.Duration
	out      []*kgo.Record
}

// handlePartition works one partition's records in offset order: due jobs
// are decided (concurrently, up to StoreConcurrency), their messages sent
// in one Sender call, and the results settled.
func (p *Pusher) handlePartition(ctx context.Context, fp kgo.FetchTopicPartition) (partResult, error) {
	res := partResult{tp: topicPartition{fp.Topic, fp.Partition}}
	tier, retryTopic := p.tiers[fp.Topic]
	now := p.cfg.Now()
	var tasks []*pushTask
	for _, r := range fp.Records {
		t := &pushTask{rec: r, now: now}
		job, err := DecodePush(r)
		if err == nil {
			t.meta, err = decodePushMeta(r)
		}
		if err != nil {
			p.log.Error("dead-lettering an undecodable push record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			p.m.dlq.WithLabelValues("undecodable").Inc()
			res.out = append(res.out, p.codec.PushDLQ(r, fmt.Errorf("undecodable: %w", err), 0))
			res.handled = append(res.handled, r)
			continue
		}
		t.job = job
		if retryTopic && now.Before(t.meta.notBefore) {
			// The head waits for its time, bounded by the tier's delay
			// (a record with a longer wait than its tier hops on).
			wake := t.meta.notBefore
			if bound := r.Timestamp.Add(tier); bound.Before(wake) {
				wake = bound
			}
			if now.Before(wake) {
				res.rewind, res.wake = r, wake
				break
			}
			hop, err := p.codec.pushRetry(p.tierFor(t.meta.notBefore.Sub(now)), &t.job, &t.meta, now)
			if err != nil {
				return res, err
			}
			p.m.retries.WithLabelValues("hop").Inc()
			res.out = append(res.out, hop)
			res.handled = append(res.handled, r)
			continue
		}
		t.jobID = job.Notification.ID
		if t.jobID == "" {
			t.jobID = "event:" + job.Notification.EventID
		}
		tasks = append(tasks, t)
		res.handled = append(res.handled, r)
	}
	if err := p.perTask(ctx, tasks, p.decide); err != nil {
		return res, err
	}
	p.send(ctx, tasks)
	if err := p.perTask(ctx, tasks, p.settle); err != nil {
		return res, err
	}
	for _, t := range tasks {
		res.out = append(res.out, t.out...)
	}
	return res, nil
}

// perTask runs fn for every task, StoreConcurrency at a time.
func (p *Pusher) perTask(ctx context.Context, tasks []*pushTask, fn func(context.Context, *pushTask) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.StoreConcurrency)
	for _, t := range tasks {
		g.Go(func() error { return fn(ctx, t) })
	}
	return g.Wait()
}

// call runs a store call, retrying transient errors with backoff until it
// succeeds or ctx is done; a permanent or fatal error is returned as is.
func (p *Pusher) call(ctx context.Context, what string, f func(context.Context) error) error {
	bo := retry.Backoff{Min: p.cfg.RetryBackoff, Max: p.cfg.MaxRetryBackoff}
	for {
		err := f(ctx)
		if err == nil || errclass.IsPermanent(err) || errclass.IsFatal(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		p.log.Warn("store call failed, retrying", "call", what, "backoff", d, "err", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// storeFailed turns a store error into the task's outcome: a permanent
// one dead-letters the job (nil: go on), anything else is returned.
func (p *Pusher) storeFailed(t *pushTask, err error) error {
	if !errclass.IsPermanent(err) {
		return err
	}
	p.log.Warn("dead-lettering a push job after a permanent store error", "user", t.job.UserID, "job", t.jobID, "err", err)
	p.giveUp(t, t.meta.tokens, "store: "+err.Error(), t.job.Attempt)
	return nil
}

// drop counts a job dropped at send time.
func (p *Pusher) drop(reason string) { p.m.dropped.WithLabelValues(reason).Inc() }

// decide makes the send-time decisions of one job and builds its
// messages.
func (p *Pusher) decide(ctx context.Context, t *pushTask) error {
	job, n := &t.job, &t.job.Notification
	if !job.ExpiresAt.IsZero() && !t.now.Before(job.ExpiresAt) {
		p.drop("expired")
		return nil
	}
	var prefs herald.Preferences
	if err := p.call(ctx, "GetPreferences", func(ctx context.Context) (err error) {
		prefs, err = p.cfg.Store.GetPreferences(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	switch {
	case prefs.Muted(n.Type):
		p.drop("muted")
		return nil
	case !prefs.Channels.Push:
		p.drop(herald.PushDisabled.String())
		return nil
	case n.Priority != herald.PriorityHigh && prefs.InQuietHours(t.now):
		p.drop(herald.PushQuietHours.String())
		return nil
	}
	if d := p.cfg.PushDelay[n.Type]; d > 0 && !t.meta.delayed {
		from := n.CreatedAt
		if from.IsZero() {
			from = t.rec.Timestamp
		}
		if due := from.Add(d); t.now.Before(due) {
			t.meta.delayed = true
			return p.schedule(t, t.meta.tokens, job.Attempt, due.Sub(t.now), "delay")
		}
	}
	if n.Seq > 0 {
		var unread []herald.Notification
		if err := p.call(ctx, "List", func(ctx context.Context) (err error) {
			unread, err = p.cfg.Store.List(ctx, job.UserID, n.Seq-1, 1, true)
			return err
		}); err != nil {
			return p.storeFailed(t, err)
		}
		if len(unread) == 0 || unread[0].Seq != n.Seq {
			p.drop("read")
			return nil
		}
	}
	var devices []herald.Device
	var sent map[string]bool
	if err := p.call(ctx, "Devices", func(ctx context.Context) (err error) {
		devices, err = p.cfg.Store.Devices(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	if err := p.call(ctx, "PushSent", func(ctx context.Context) (err error) {
		sent, err = p.cfg.Store.PushSent(ctx, job.UserID, t.jobID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	devices = slices.DeleteFunc(devices, func(d herald.Device) bool {
		return sent[d.Token] || (t.meta.tokens != nil && !slices.Contains(t.meta.tokens, d.Token))
	})
	if len(devices) == 0 {
		if t.meta.tokens == nil && len(sent) == 0 {
			p.drop("no_devices")
		}
		return nil
	}
	var badge int64
	if err := p.call(ctx, "UnreadCount", func(ctx context.Context) (err error) {
		badge, err = p.cfg.Store.UnreadCount(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	for _, d := range devices {
		d.UserID = job.UserID
		key := p.keyOf(d)
		if ok, wait := p.circuit(key).allow(t.now); !ok {
			t.deferred = append(t.deferred, d.Token)
			t.wait = max(t.wait, wait)
			continue
		}
		t.msgs = append(t.msgs, push.Message{
			UserID: job.UserID, Device: d, Notification: *n,
			CollapseKey: job.CollapseKey, ExpiresAt: job.ExpiresAt, Badge: int(min(badge, 1<<31-1)),
		})
		t.keys = append(t.keys, key)
	}
	return nil
}

// send sends every task's messages in one Sender call and hands each task
// its results.
func (p *Pusher) send(ctx context.Context, tasks []*pushTask) {
	var msgs []push.Message
	for _, t := range tasks {
		msgs = append(msgs, t.msgs...)
	}
	if len(msgs) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	defer cancel()
	results := p.cfg.Sender.Send(sctx, msgs)
	i := 0
	for _, t := range tasks {
		t.results = make([]push.Result, len(t.msgs))
		for j := range t.msgs {
			if i < len(results) {
				t.results[j] = results[i]
			} else {
				t.results[j] = push.Result{Reason: push.ReasonUnknown, Class: errclass.ClassTransient, Err: errors.New("push: sender returned too few results")}
			}
			i++
		}
	}
}

// settle records the results of one job's sends and schedules what
// remains.
func (p *Pusher) settle(ctx context.Context, t *pushTask) error {
	job := &t.job
	now := p.cfg.Now()
	var transient []string
	var retryAfter time.Duration
	var lastReason string
	for i, r := range t.results {
		m := &t.msgs[i]
		key := p.learn(m.Device, r.Provider, t.keys[i])
		if r.Provider != "" {
			p.circuit(key).record(now, r.Retriable())
		}
		outcome := "permanent"
		switch {
		case r.Sent:
			outcome = "sent"
		case r.TokenDead:
			outcome = "token_dead"
		case r.Retriable():
			outcome = "transient"
		}
		p.m.sends.WithLabelValues(key.provider, m.Device.AppID, outcome, r.Reason).Inc()
		token := m.Device.Token
		switch outcome {
		case "sent":
			if err := p.call(ctx, "MarkPushSent", func(ctx context.Context) error {
				return p.cfg.Store.MarkPushSent(ctx, job.UserID, t.jobID, token)
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot record push progress", "user", job.UserID, "job", t.jobID, "err", err)
			}
			if err := p.call(ctx, "TouchDevice", func(ctx context.Context) error {
				return p.cfg.Store.TouchDevice(ctx, job.UserID, token, now)
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot touch device", "user", job.UserID, "err", err)
			}
		case "token_dead":
			var deleted bool
			if err := p.call(ctx, "DeleteDeviceIfStale", func(ctx context.Context) (err error) {
				deleted, err = p.cfg.Store.DeleteDeviceIfStale(ctx, job.UserID, token, t.now)
				return err
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot delete a dead device", "user", job.UserID, "err", err)
			}
			if deleted {
				p.m.tokensDeleted.Inc()
			}
		case "transient":
			transient = append(transient, token)
			retryAfter = max(retryAfter, r.RetryAfter)
			lastReason = r.Reason
		default:
			p.giveUp(t, []string{token}, r.Reason, job.Attempt+1)
		}
	}
	if len(transient) > 0 {
		attempts := job.Attempt + 1
		d, err := p.cfg.Backoff.Next(attempts, retryAfter, now, job.ExpiresAt)
		switch {
		case errors.Is(err, push.ErrExpired):
			p.drop("expired")
		case err != nil:
			p.giveUp(t, transient, lastReason, attempts)
		default:
			if err := p.schedule(t, transient, attempts, d, lastReason); err != nil {
				return err
			}
		}
	}
	if len(t.deferred) > 0 {
		// An open circuit burns no attempt.
		if !job.ExpiresAt.IsZero() && !now.Add(t.wait).Before(job.ExpiresAt) {
			p.drop("expired")
			return nil
		}
		return p.schedule(t, t.deferred, job.Attempt, t.wait, "circuit_open")
	}
	return nil
}

// keyOf is the circuit of a device: its app and the provider its route
// was last answered by (before any answer: APNs for iOS, FCM otherwise).
func (p *Pusher) keyOf(d herald.Device) circuitKey {
	p.circuitsMu.Lock()
	prov, ok := p.providers[push.Route{AppID: d.AppID, Platform: d.Platform}]
	p.circuitsMu.Unlock()
	if !ok {
		prov = push.ProviderFCM
		if d.Platform == push.PlatformIOS {
			prov = push.ProviderAPNs
		}
	}
	return circuitKey{provider: prov, app: d.AppID}
}

// learn records which provider answered for a device's route and returns
// the circuit the answer belongs to.
func (p *Pusher) learn(d herald.Device, provider string, asked circuitKey) circuitKey {
	if provider == "" || provider == asked.provider {
		return asked
	}
	p.circuitsMu.Lock()
	p.providers[push.Route{AppID: d.AppID, Platform: d.Platform}] = provider
	p.circuitsMu.Unlock()
	return circuitKey{provider: provider, app: d.AppID}
}

// circuit returns key's breaker, creating it closed.
func (p *Pusher) circuit(key circuitKey) *circuit {
	p.circuitsMu.Lock()
	defer p.circuitsMu.Unlock()
	c, ok := p.circuits[key]
	if !ok {
		g := p.m.circuit.WithLabelValues(key.provider, key.app)
		g.Set(float64(CircuitClosed))
		c = newCircuit(p.cfg.Circuit, func(s CircuitState) { g.Set(float64(s)) })
		p.circuits[key] = c
	}
	return c
}
