package cassandra

import (
	"fmt"
	"strings"
)

// Row kinds of the inbox table (its first clustering column); see doc.go.
const (
	kindAnchor       = 0 // (0, 0, ""): makes the per-user statics a point read
	kindNotification = 1 // (1, seq, "")
	kindUnread       = 2 // (2, seq, ""): seq is unread (if above read_upto)
	kindEvent        = 3 // (3, 0, event_id) → target_seq
)

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
	commit        string
	anchor        string

	insertNotification string
	insertUnread       string
	insertEvent        string
	deleteUnread       string

	eventsIn        string
	notificationsIn string
	unreadIn        string

	listAfter        string
	listAfterLimit   string
	unreadBetween    string
	unreadAfter      string
	unreadAfterLimit string

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

	ping string
}

func newStatements(ks string) statements {
	r := strings.NewReplacer(
		"{ks}", ks,
		"{anchor}", fmt.Sprint(kindAnchor),
		"{notif}", fmt.Sprint(kindNotification),
		"{unread}", fmt.Sprint(kindUnread),
		"{event}", fmt.Sprint(kindEvent),
		"{cols}", notifColumns,
	)
	f := r.Replace
	return statements{
		// Selecting kind (a clustering column) makes this a point read of the
		// anchor row that returns the statics with it.
		meta: f(`SELECT kind, rev, last_seq, unread, read_upto, op FROM {ks}.inbox
			WHERE user_id = ? AND kind = {anchor} AND seq = 0 AND event_key = ''`),
		// The anchor (0, 0, "") and the event-index rows (3, 0, id): the
		// statics and the dedup lookup of an Append in one read.
		metaAndEvents: f(`SELECT kind, event_key, target_seq, rev, last_seq, unread, read_upto, op FROM {ks}.inbox
			WHERE user_id = ? AND kind IN ({anchor}, {event}) AND seq = 0 AND event_key IN ?`),
		// Every change of a user's inbox is one conditional batch holding
		// this statement; statics never expire.
		commit: f(`UPDATE {ks}.inbox USING TTL 0 SET rev = ?, last_seq = ?, unread = ?, read_upto = ?, op = ?
			WHERE user_id = ? IF rev = ?`),
		anchor: f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key) VALUES (?, {anchor}, 0, '') USING TTL 0`),

		insertNotification: f(`INSERT INTO {ks}.inbox (user_id, kind, event_key, {cols})
			VALUES (?, {notif}, '', ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`),
		insertUnread: f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key) VALUES (?, {unread}, ?, '') USING TTL ?`),
		insertEvent:  f(`INSERT INTO {ks}.inbox (user_id, kind, seq, event_key, target_seq) VALUES (?, {event}, 0, ?, ?) USING TTL ?`),
		deleteUnread: f(`DELETE FROM {ks}.inbox WHERE user_id = ? AND kind = {unread} AND seq = ? AND event_key = ''`),

		eventsIn: f(`SELECT event_key, target_seq FROM {ks}.inbox
			WHERE user_id = ? AND kind = {event} AND seq = 0 AND event_key IN ?`),
		notificationsIn: f(`SELECT {cols} FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq IN ?`),
		unreadIn:        f(`SELECT seq FROM {ks}.inbox WHERE user_id = ? AND kind = {unread} AND seq IN ?`),

		listAfter:      f(`SELECT {cols}, read_upto FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq > ?`),
		listAfterLimit: f(`SELECT {cols}, read_upto FROM {ks}.inbox WHERE user_id = ? AND kind = {notif} AND seq > ? LIMIT ?`),
		unreadBetween: f(`SELECT seq FROM {ks}.inbox
			WHERE user_id = ? AND kind = {unread} AND seq > ? AND seq <= ?`),
		unreadAfter:      f(`SELECT seq, read_upto FROM {ks}.inbox WHERE user_id = ? AND kind = {unread} AND seq > ?`),
		unreadAfterLimit: f(`SELECT seq, read_upto FROM {ks}.inbox WHERE user_id = ? AND kind = {unread} AND seq > ? LIMIT ?`),

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

		ping: `SELECT release_version FROM system.local`,
	}
}
