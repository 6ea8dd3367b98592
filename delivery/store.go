package delivery

import herald "github.com/heraldhq/herald"

// Store helpers, each bounded by StoreTimeout and cancelled by Shutdown.

func (g *Gateway) lastSeq(user string) (uint64, error) {
	ctx, cancel := g.storeCtx()
	defer cancel()
	return g.cfg.Store.LastSeq(ctx, user)
}

func (g *Gateway) unreadCount(user string) (int64, error) {
	ctx, cancel := g.storeCtx()
	defer cancel()
	return g.cfg.Store.UnreadCount(ctx, user)
}

func (g *Gateway) list(user string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	ctx, cancel := g.storeCtx()
	defer cancel()
	return g.cfg.Store.List(ctx, user, after, limit, unreadOnly)
}

// gapPage reads one page of the user's inbox in (from, to). done reports
// that nothing in the range remains after the returned notifications.
func (g *Gateway) gapPage(user string, from, to uint64) (ns []herald.Notification, done bool, err error) {
	if to <= from+1 {
		return nil, true, nil
	}
	limit := g.cfg.ReplayPageSize
	if span := to - from - 1; span < uint64(limit) {
		limit = int(span)
	}
	page, err := g.list(user, from, limit, false)
	if err != nil {
		return nil, false, err
	}
	n := 0
	for n < len(page) && page[n].Seq < to {
		n++
	}
	done = len(page) < limit || n < len(page) || (n > 0 && page[n-1].Seq >= to-1)
	return page[:n], done, nil
}

// missing logs a gap the inbox could not fill: the notifications between
// last and prev are not stored (or not yet visible); delivery moves on.
func (g *Gateway) missing(user string, last, prev uint64) {
	if last < prev {
		g.log.Warn("gap not in the inbox", "user", user, "after", last, "through", prev)
	}
}
