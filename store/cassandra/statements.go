package cassandra

import (
	"fmt"
	"strings"
)

// Row kinds of the inbox table (its first clustering column); see doc.go.
const (
	kindAnchor       = 0 // (0, 0, ""): makes the per-user statics a point read
	kindNotification = 1 // (1, seq, "")
	kindUnread       = 2 // (2, seq, ""): unread marker of builds before migration 0006, no longer read or written
	kindEvent        = 3 // (3, 0, event_id) → target_seq
	kindRead         = 4 // (4, seq, ""): seq is read (if above read_upto)
)

// staticColumns are the per-user statics, in meta.dest order.
const staticColumns = `rev, last_seq, read_above, read_upto, op`

// notifColumns are the columns of a notification row, in rowScan order.
const notifColumns = `seq, id, event_id, type, priority, title, body, data, created_at`

// ownerColumns are the columns of a device_owner row, in ownerRow.scan order.
const ownerColumns = `user_id, gen, platform, app_id, created_at, registered_at, last_seen`

// statements are the CQL texts of a Store, keyspace-qualified once at Open.
// The driver prepares each distinct text once per host and reuses it, so
// these strings must stay constant (values are always bound, never
// formatted in).
type statements struct {
	meta          string
	metaAndEvents string
	stateAndIndex string
	commit        string
	anchor        string

	setLastSeq string

	insertNotification string
	insertEvent        string
	insertRead         string

	eventsIn        string
	notificationsIn string
	readIn          string

	listAfter      string
	listAfterLimit string
	readBetween    string

	epochGet    string
	epochInsert string
	epochSet    string

	claim string

	getPrefs string
	putPrefs string

	devices      string
	deviceOne    string
	putDevice    string
	deleteDevice string
	ownerGet     string
	ownerIn      string
	ownerInsert  string
	ownerSet     string
	ownerRelease string
	ownerTouch   string

	markPushSent string
	pushSent     string

	policyGet     string
	policyPut     string
	policyDelete  string
	dueInsert     string
	dueAfter      string
	dueHours      string
	dueHourInsert string
	cursorGet     string
	cursorPut     string

	subCount     string
	subGet       string
	subInsert    string
	subDelete    string
	subTopics    string
	memberPut    string
	memberDelete string
	membersAfter string
	countAdd     string
	countGet     string

	feedEvent    string
	feedItemPut  string
	feedItemGet  string
	feedItems    string
	feedTop      string
	feedHeadGet  string
	feedHeadPut  string
	feedEventPut string
	cursorsGet   string
	feedCursor   string

	ping string
}

func newStatements(ks string) statements {
	r := strings.NewReplacer(
		"{ks}", ks,
		"{anchor}", fmt.Sprint(kindAnchor),
		"{notif}", fmt.Sprint(kindNotification),
		"{event}", fmt.Sprint(kindEvent),
		"{read}", fmt.Sprint(kindRead),
		"{cols}", notifColumns,
		"{statics}", staticColumns,
	)
	f := r.Replace
	return statements{
		// Selecting kind (a clustering column) makes this a point read of the
		// anchor row that returns the statics with it.
		meta: f(`SELECT kind, {statics} FROM {ks}.inbox
			WHERE user_id = ? AND kind = {anchor} AND seq = 0 AND event_key = ''`),
		// The anchor (0, 0, "") and the event-index rows (3, 0, id): the
		// statics and the dedup lookup of an Append in one read.
		metaAndEvents: f(`SELECT kind, event_key, target_seq, {statics} FROM {ks}.inbox
			WHERE user_id = ? AND kind IN ({anchor}, {event}) AND seq = 0 AND event_key IN ?`),
		// The anchor with the statics and the whole event index of a user:
		// the writer cache's load (writercache.go), bounded by its per-user cap.
		stateAndIndex: f(`SELECT kind, event_key, {statics} FROM {ks}.inbox
			WHERE user_id = ? AND kind IN ({anchor}, {event}) AND seq = 0 LIMIT ?`),
		// The readers' state: every MarkRead and MarkAllRead is one
		// conditional batch holding this statement; statics never expire.
		commit: f(`UPDATE {ks}.inbox USING TTL 0 SET rev = ?, read_upto = ?, read_above = ?, op = ?
			WHERE user_id = ? IF rev = ?`),
		// The writers' state and rows: plain writes in one batch per user,
		// stamped with the writer epoch's timestamp (see doc.go, "Fencing").
		setLastSeq: f(`UPDATE {ks}.inbox USING TTL 0 SET last_seq = ? WHERE user_id = ?`),
		anchor:     f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key) VALUES (?, {anchor}, 0, '') USING TTL 0`),

		insertNotification: f(`INSERT INTO {ks}.inbox (user_id, kind, event_key, {cols})
			VALUES (?, {notif}, '', ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`),
		insertEvent: f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key, target_seq) VALUES (?, {event}, 0, ?, ?) USING TTL ?`),
		insertRead:  f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key) VALUES (?, {read}, ?, '') USING TTL ?`),

		eventsIn: f(`SELECT event_key, target_seq FROM {ks}.inbox
			WHERE user_id = ? AND kind = {event} AND seq = 0 AND event_key IN ?`),
		notificationsIn: f(`SELECT {cols} FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq IN ?`),
		readIn:          f(`SELECT seq FROM {ks}.inbox WHERE user_id = ? AND kind = {read} AND seq IN ?`),

		listAfter:      f(`SELECT {cols}, {statics} FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq > ?`),
		listAfterLimit: f(`SELECT {cols}, {statics} FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq > ? LIMIT ?`),
		readBetween: f(`SELECT seq FROM {ks}.inbox
			WHERE user_id = ? AND kind = {read} AND seq > ? AND seq <= ?`),

		// writer_epochs: one row per scope, changed only by lightweight
		// transactions (Fence); read by every Append.
		epochGet:    f(`SELECT epoch, base, op FROM {ks}.writer_epochs WHERE scope = ?`),
		epochInsert: f(`INSERT INTO {ks}.writer_epochs (scope, epoch, base, op, claimed_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`),
		epochSet:    f(`UPDATE {ks}.writer_epochs SET epoch = ?, base = ?, op = ?, claimed_at = ? WHERE scope = ? IF epoch = ?`),

		claim: f(`INSERT INTO {ks}.claims (user_id, event_id, claimed_by) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`),

		getPrefs: f(`SELECT prefs FROM {ks}.preferences WHERE user_id = ?`),
		putPrefs: f(`INSERT INTO {ks}.preferences (user_id, prefs, updated_at) VALUES (?, ?, ?)`),

		// devices is the index by user; device_owner holds the truth (see
		// doc.go, "Device registry"). Index writes carry USING TIMESTAMP gen.
		devices:      f(`SELECT device_token, platform, app_id, created_at FROM {ks}.devices WHERE user_id = ?`),
		deviceOne:    f(`SELECT created_at FROM {ks}.devices WHERE user_id = ? AND device_token = ?`),
		putDevice:    f(`INSERT INTO {ks}.devices (user_id, device_token, platform, app_id, created_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		deleteDevice: f(`DELETE FROM {ks}.devices USING TIMESTAMP ? WHERE user_id = ? AND device_token = ?`),
		ownerGet:     f(`SELECT ` + ownerColumns + ` FROM {ks}.device_owner WHERE device_token = ?`),
		ownerIn:      f(`SELECT device_token, ` + ownerColumns + ` FROM {ks}.device_owner WHERE device_token IN ?`),
		ownerInsert: f(`INSERT INTO {ks}.device_owner (device_token, user_id, gen, platform, app_id, created_at, registered_at, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`),
		ownerSet: f(`UPDATE {ks}.device_owner SET user_id = ?, gen = ?, platform = ?, app_id = ?, created_at = ?, registered_at = ?, last_seen = ?
			WHERE device_token = ? IF user_id = ? AND gen = ?`),
		// The row stays (user_id null) so that gen keeps increasing if the
		// token is registered again.
		ownerRelease: f(`UPDATE {ks}.device_owner SET user_id = null, gen = ? WHERE device_token = ? IF user_id = ? AND gen = ?`),
		ownerTouch:   f(`UPDATE {ks}.device_owner SET last_seen = ? WHERE device_token = ? IF user_id = ? AND gen = ?`),

		markPushSent: f(`INSERT INTO {ks}.push_progress (user_id, job_id, device_token, sent_at) VALUES (?, ?, ?, ?) USING TTL ?`),
		pushSent:     f(`SELECT device_token FROM {ks}.push_progress WHERE user_id = ? AND job_id = ?`),

		// Policy state (see doc.go, "Policy state"): plain writes of the
		// scope's fenced writer, stamped with its epoch's timestamps.
		policyGet:    f(`SELECT state FROM {ks}.policy_state WHERE user_id = ?`),
		policyPut:    f(`INSERT INTO {ks}.policy_state (user_id, state) VALUES (?, ?) USING TIMESTAMP ?`),
		policyDelete: f(`DELETE FROM {ks}.policy_state USING TIMESTAMP ? WHERE user_id = ?`),
		dueInsert:    f(`INSERT INTO {ks}.policy_due (scope, hour, at_us, user_id, key) VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
		// One hour bucket of the due index, strictly after a cursor and
		// not after until, in clustering (= PolicyDue.Less) order.
		dueAfter: f(`SELECT at_us, user_id, key FROM {ks}.policy_due
			WHERE scope = ? AND hour = ? AND (at_us, user_id, key) > (?, ?, ?) AND (at_us) <= (?) LIMIT ?`),
		// The hour buckets that may hold entries, ascending.
		dueHours:      f(`SELECT hour FROM {ks}.policy_due_hours WHERE scope = ? AND hour >= ? AND hour <= ?`),
		dueHourInsert: f(`INSERT INTO {ks}.policy_due_hours (scope, hour) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?`),
		cursorGet:     f(`SELECT at_us, user_id, key FROM {ks}.policy_cursor WHERE scope = ?`),
		cursorPut:     f(`INSERT INTO {ks}.policy_cursor (scope, at_us, user_id, key) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),

		// Subscriptions (see doc.go, "Subscriptions"): subscriptions_by_user
		// is changed only by lightweight transactions, the topic index and
		// the counter by plain writes after them.
		subCount:     f(`SELECT COUNT(*) FROM {ks}.subscriptions_by_user WHERE user_id = ?`),
		subGet:       f(`SELECT subscribed_at_us FROM {ks}.subscriptions_by_user WHERE user_id = ? AND topic = ?`),
		subInsert:    f(`INSERT INTO {ks}.subscriptions_by_user (user_id, topic, subscribed_at_us) VALUES (?, ?, ?) IF NOT EXISTS`),
		subDelete:    f(`DELETE FROM {ks}.subscriptions_by_user WHERE user_id = ? AND topic = ? IF EXISTS`),
		subTopics:    f(`SELECT topic, subscribed_at_us FROM {ks}.subscriptions_by_user WHERE user_id = ?`),
		memberPut:    f(`INSERT INTO {ks}.subscriptions_by_topic (topic, user_id, subscribed_at_us) VALUES (?, ?, ?)`),
		memberDelete: f(`DELETE FROM {ks}.subscriptions_by_topic WHERE topic = ? AND user_id = ?`),
		membersAfter: f(`SELECT user_id, subscribed_at_us FROM {ks}.subscriptions_by_topic WHERE topic = ? AND user_id > ? LIMIT ?`),
		countAdd:     f(`UPDATE {ks}.subscription_counts SET members = members + ? WHERE topic = ?`),
		countGet:     f(`SELECT members FROM {ks}.subscription_counts WHERE topic = ?`),

		// Feeds (see doc.go, "Feeds"): feed_items is changed only by
		// lightweight transactions; feed_heads and feed_cursors are written
		// with USING TIMESTAMP of the position, so the highest one wins.
		feedEvent:    f(`SELECT pos FROM {ks}.feed_events WHERE topic = ? AND event_id = ?`),
		feedItemPut:  f(`INSERT INTO {ks}.feed_items (topic, pos, event) VALUES (?, ?, ?) IF NOT EXISTS`),
		feedItemGet:  f(`SELECT event FROM {ks}.feed_items WHERE topic = ? AND pos = ?`),
		feedItems:    f(`SELECT pos, event FROM {ks}.feed_items WHERE topic = ? AND pos > ? ORDER BY pos ASC LIMIT ?`),
		feedTop:      f(`SELECT pos FROM {ks}.feed_items WHERE topic = ? LIMIT 1`),
		feedHeadGet:  f(`SELECT head FROM {ks}.feed_heads WHERE topic = ?`),
		feedHeadPut:  f(`INSERT INTO {ks}.feed_heads (topic, head) VALUES (?, ?) USING TIMESTAMP ?`),
		feedEventPut: f(`INSERT INTO {ks}.feed_events (topic, event_id, pos) VALUES (?, ?, ?)`),
		cursorsGet:   f(`SELECT topic, pos FROM {ks}.feed_cursors WHERE user_id = ?`),
		feedCursor:   f(`INSERT INTO {ks}.feed_cursors (user_id, topic, pos) VALUES (?, ?, ?) USING TIMESTAMP ?`),

		ping: `SELECT release_version FROM system.local`,
	}
}
