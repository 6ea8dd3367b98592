package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Digest windows close on time even when no further event of their user
// arrives. Each window the policy stage writes has an entry in the due
// index of its partition (store.Policies); the enricher that owns the
// partition scans the index every Config.PolicyTick and produces, for each
// entry that is due, a tick record (PolicyTick) keyed by the user id into
// herald.events, i.e. into the user's own partition, behind the user's
// events. The window is closed when the tick is consumed, by the policy
// stage, inside that batch's transaction: the digest is stored, delivered
// and pushed exactly once by the same means as any event, and in order
// with the user's other notifications.
//
// Why a due index and ticks rather than a timer topic or timers in
// memory: timers in memory die with the process, and a timer topic
// (records that become visible at their due time) is not something Kafka
// has. The due index is durable, is written through the partition's
// fenced Writer with the state, and needs no scan of users: one range read
// per owned partition per tick. Producing a tick is at least once (a
// crash between the produce and the cursor write produces it again); that
// is harmless because a tick closes only the window it was made for, and
// only if it is still open.
//
// The scanner reads (cursor - dueLookback, now] each time, skipping the
// entries it already ticked, and advances the durable cursor
// (SetPolicyCursor) as it goes: a new owner of the partition resumes from
// the cursor, so windows that fell due while no enricher ran are ticked as
// soon as one does, however long the outage (up to the store's
// PolicyDueRetention). The lookback covers due entries that land after
// the scan passed their time: a batch that opened a window at t writes
// its entry at t+window with window >= 1s, but a slow batch may write it
// later than that. An entry that lands more than dueLookback late (a
// zombie enricher's) is closed by the user's next event of that key
// instead (policy.Apply closes a window that is past due).
//
// A partition's first scan, when it has no cursor yet, starts one
// lookback before now rather than at the beginning of time (which would
// read the index's whole retention): the first scan runs one PolicyTick
// after the enricher starts and writes the cursor, so only windows of an
// enricher that crashed within its first tick and stayed down longer than
// the lookback wait for their user's next event.

// dueLookback is how far behind its cursor the scanner looks again.
const dueLookback = time.Minute

// duePage is the most entries read, and ticks produced, at once.
const duePage = 1000

// dueScanner produces the ticks of the due windows of the partitions
// this member owns. Its state is used by its run goroutine only.
type dueScanner struct {
	cfg   *EnricherConfig
	ws    *writers
	log   *slog.Logger
	m     *enricherMetrics
	codec Codec
	// cl produces the ticks: a plain idempotent producer (the enricher's
	// own client is transactional, and ticks need no transaction).
	cl *kgo.Client
	// scopes is the scanning position of each partition, for the Writer
	// it was loaded under (a new fence reloads it from the store).
	scopes map[string]*dueScope
}

// dueScope is the scanner's position in one partition's due index.
type dueScope struct {
	w store.Writer
	// cursor is the durable cursor as last stored (or read).
	cursor time.Time
	// scanned: every entry at or before it was ticked (bar late ones).
	scanned time.Time
	// ticked are the entries ticked in the lookback window.
	ticked map[store.PolicyDue]struct{}
}

func newDueScanner(cfg *EnricherConfig, ws *writers, log *slog.Logger, m *enricherMetrics) (*dueScanner, error) {
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts,
		kgo.RecordPartitioner(eventsPartitioner),
		kgo.DefaultProduceTopic(cfg.Topics.Events),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: enricher: tick producer: %w", ErrInvalidConfig, err)
	}
	return &dueScanner{
		cfg: cfg, ws: ws, log: log, m: m, codec: NewCodec(cfg.Topics), cl: cl,
		scopes: map[string]*dueScope{},
	}, nil
}

// close releases the tick producer; after run returned.
func (d *dueScanner) close() { d.cl.Close() }

// run scans every PolicyTick until ctx is done.
func (d *dueScanner) run(ctx context.Context) {
	t := time.NewTicker(d.cfg.PolicyTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.scan(ctx)
		}
	}
}

// scan ticks what is due in every owned partition; errors are logged and
// the partition is scanned again on the next tick.
func (d *dueScanner) scan(ctx context.Context) {
	owned := d.ws.scopes()
	keep := make(map[string]bool, len(owned))
	for _, scope := range owned {
		keep[scope] = true
		if err := d.scanScope(ctx, scope); err != nil && ctx.Err() == nil {
			d.log.Warn("scanning the policy due index failed; retrying on the next tick", "scope", scope, "err", err)
		}
	}
	for scope := range d.scopes {
		if !keep[scope] {
			delete(d.scopes, scope)
		}
	}
}

func (d *dueScanner) scanScope(ctx context.Context, scope string) error {
	w, err := d.ws.get(ctx, scope)
	if err != nil {
		return err
	}
	sc := d.scopes[scope]
	if sc == nil || sc.w != w {
		cur, err := d.cfg.Store.PolicyCursor(ctx, scope)
		if err != nil {
			return fmt.Errorf("read cursor: %w", err)
		}
		start := cur.At
		if start.IsZero() {
			// Never scanned: entries can only come from batches of the
			// last moments (see "A partition's first scan" above).
			start = d.cfg.Now().Add(-dueLookback)
		}
		sc = &dueScope{w: w, cursor: cur.At, scanned: start, ticked: map[store.PolicyDue]struct{}{}}
		d.scopes[scope] = sc
	}
	now := d.cfg.Now()
	after := store.PolicyDue{At: sc.scanned.Add(-dueLookback)}
	for {
		due, err := d.cfg.Store.PolicyDue(ctx, scope, after, now, duePage)
		if err != nil {
			return fmt.Errorf("read due entries: %w", err)
		}
		var recs []*kgo.Record
		for _, e := range due {
			if _, done := sc.ticked[e]; done {
				continue
			}
			r, err := d.codec.Tick(PolicyTick{UserID: e.UserID, Key: e.Key, DueAt: e.At})
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		if len(recs) > 0 {
			if err := d.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce %d ticks: %w", len(recs), err)
			}
			d.m.policyTicks.Add(float64(len(recs)))
		}
		for _, e := range due {
			sc.ticked[e] = struct{}{}
		}
		if len(due) < duePage {
			break
		}
		after = due[len(due)-1]
	}
	sc.scanned = now
	for e := range sc.ticked {
		if e.At.Before(now.Add(-dueLookback)) {
			delete(sc.ticked, e)
		}
	}
	// The cursor is written at most once per lookback: a restart then
	// re-reads at most two lookbacks, and a quiet partition costs one
	// read per tick and one write a minute.
	if next := now.Add(-dueLookback); next.Sub(sc.cursor) >= dueLookback {
		if err := w.SetPolicyCursor(ctx, store.PolicyDue{At: next}); err != nil {
			return fmt.Errorf("write cursor: %w", err)
		}
		sc.cursor = next
	}
	return nil
}
