package delivery

// PresenceHook is told when users come and go on this gateway, so that a
// fleet of gateways can find which one holds a user's connections
// (delivery/cluster registers them in Redis).
//
// A user is present while they have at least one registered connection on
// this gateway, including one being closed; that is what Present reports
// and LocalUsers lists. UserOnline is called when the user's first
// connection registers (before its replay starts, so anything routed to
// this gateway meanwhile is buffered behind the replay); UserOffline when
// the last one is torn down, including at Shutdown.
//
// The calls are made on the connection's goroutines with no gateway lock
// held, so they may run concurrently, and for one user a UserOnline and a
// UserOffline racing each other may arrive in either order: treat them as
// "this user changed", and read the current state with Present.
// Implementations must return promptly: they run on the handshake and
// teardown paths. Do any I/O on a goroutine of your own.
type PresenceHook interface {
	UserOnline(userID string)
	UserOffline(userID string)
}

// Present reports whether userID is present on this gateway: it has a
// registered connection (WebSocket or SSE, possibly one being closed) or a
// waiting long poll. (HasLocal, by contrast, ignores connections being
// closed and long polls.) Presence hooks fire on changes of this.
func (g *Gateway) Present(userID string) bool {
	return g.hub.present(userID)
}

// LocalUsers calls fn once for every user present on this gateway, one hub
// shard at a time. No gateway lock is held while fn runs, so fn may block
// (e.g. on a Redis pipeline); users connecting or leaving meanwhile may or
// may not be reported.
func (g *Gateway) LocalUsers(fn func(userID string)) {
	g.hub.eachUser(fn)
}
