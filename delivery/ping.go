package delivery

import "time"

// pingLoop pings the connections of shards first, first+step, … : one shard
// per tick, so each connection is pinged (and its token's expiry checked)
// once per PingInterval and the work is spread over the interval. A ping only queues a flag on the connection;
// the loop never touches a socket, so a dead peer cannot stall it.
func (g *Gateway) pingLoop(first, step int) {
	defer g.wg.Done()
	var mine []int
	for i := first; i < len(g.hub.shards); i += step {
		mine = append(mine, i)
	}
	t := time.NewTicker(max(g.cfg.PingInterval/time.Duration(len(mine)), time.Millisecond))
	defer t.Stop()
	var buf []*conn
	for next := 0; ; next = (next + 1) % len(mine) {
		select {
		case <-g.life.Stopping():
			return
		case <-t.C:
		}
		buf = g.hub.appendShard(mine[next], buf[:0])
		now := time.Now().UnixNano()
		for _, c := range buf {
			c.ping(now)
		}
		clear(buf)
	}
}
