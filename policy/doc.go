// Package policy is the pure logic of Herald's notification policy
// (issue 12): per-type digests, rate limits and daily caps, applied by the
// enricher to each user's events before they become notifications. It
// has no store, no Kafka and no wall clock: the caller passes the time,
// the user's timezone and the user's State, and persists the State (one
// opaque blob per user, store.Writer.PutPolicy) in the same fenced batch
// as the notifications the decisions produce.
//
// # The model
//
// A Config maps event types to rules (a TypePolicy): a digest, a rate
// limit, a daily cap, or a mix. A type with no entry, and any event of
// priority high, is not governed (Policy.Governs is false): it is
// delivered as before. For a governed event of type T at time now, for a
// user whose timezone is loc, Policy.Apply decides in this order:
//
//  1. T has a digest and no rate: the event is folded into the open
//     window of its digest key (Fold), K = the event's collapse key, or T
//     when it has none.
//  2. T has a rate: a sliding-window log per (user, T) of the times of
//     the admitted events. The event is admitted iff fewer than Limit
//     admissions lie in (now-Per, now]. Over the limit it is Throttled:
//     excess "drop" (the default) drops it (Drop); excess "digest" folds
//     it into T's digest window (Fold; the window lasts digest.window if
//     T has one, else rate.per). An admitted event goes on to step 3, and
//     is logged as an admission only if step 3 lets it through.
//  3. T has a daily cap: a counter per (user, T) of the user's local day
//     (now in loc, "2006-01-02"). At the cap the event is dropped
//     (Capped), else counted and delivered (Deliver).
//
// A digest, when its window closes, goes through step 3 too (it counts 1
// toward T's cap and is dropped, Closed.Capped, at the cap) but not
// through step 2: it is the summary of what the rate limit held back.
//
// The log is exact at the boundaries because it keeps every admission
// time (at most Limit of them, pruned as they leave the window) instead of
// a counter per fixed bucket: an event exactly Per after the oldest
// admission is admitted (that admission left the window), one a
// microsecond earlier is not; there is no burst of 2*Limit across a bucket
// edge. Times are compared in microseconds, the store's precision. An
// admission later than now (the caller's clock went back) still counts:
// the error is on the side of fewer notifications.
//
// Caps count per local day so that "20 a day" means the user's day: the
// counter turns at the user's midnight (herald.Preferences.Location: the
// user's timezone, else that of their quiet hours, else UTC), and the
// same instant can be a
// different day for two users. A counter of a past day is reset when next
// used.
//
// # Windows and ticks
//
// A window opens at its first event (at now) and is due at now+window. Its
// id in the State, which is also the key of its entry in the store's due
// index, is T, U+001F, K (WindowID; a K too long for MaxKeyBytes is
// replaced by its SHA-256, so the id always fits; configured types may not
// contain U+001F). A window keeps the count, the earliest and latest
// CreatedAt, the newest MaxWindowIDs event ids and MaxWindowTitles
// non-empty titles (newest first) and the newest non-empty body; never
// data. Each window gets a number from the State's counter NextWindow
// (1, 2, ...), never reused: the digest's event id is
// "herald-digest-<n>", and the inbox deduplicates by event id. So a State
// that has ever opened a window is not Empty: deleting it would restart
// the numbers and the next digests would be taken for duplicates.
//
// Closing is driven by the due index: the enricher scans it and produces a
// tick record per due entry into the user's partition, and the tick is
// consumed like any event (Policy.Tick), inside the normal batch
// transaction, so a digest is emitted exactly once by the same mechanism
// as ordinary notifications. Tick closes the window only if it is open and
// due at or before the tick's due time: a later window of the same key is
// due later, so a stale or duplicated tick cannot close it early (Ignore).
// An event folded into a window already past due (the ticks were delayed
// by an outage) closes that window first (its digest is in the event's
// Outcome.Closed) and opens a new one with a new number.
//
// The digest is a herald.Event: ID "herald-digest-<n>", the user, Type T,
// the title template applied ({newest}: the newest title, or T if no event
// had one; {count}: N; {others}: N-1; default "{newest}" for one event,
// else "{newest} and {others} more"), cut to herald.MaxTitleLen
// characters; the newest body; CollapseKey K; priority normal; CreatedAt
// the close time; Data
// {"digest":{"count":N,"key":K,"first_at":..,"last_at":..,"event_ids":[..],"titles":[..]}}
// (times RFC 3339 at µs). Data must be at most herald.MaxDataBytes (as
// encoding/json writes it, HTML escapes included): ten ids of 128
// characters and three titles of 256 can be more, so the oldest titles,
// then the oldest ids, are left out until it fits (count, key and times
// always fit). The event passes herald.DecodeEvent.
//
// # Replays: decisions per source offset
//
// A source record can be consumed twice (the enricher crashed after the
// store batch committed, before the Kafka offset did). By then the State
// has moved on: deciding again would fold the event twice, or throttle an
// event that was delivered the first time (its admission is already in the
// log). So the caller records the outcome of every record it decides
// (State.Record, by source offset, in the same PutPolicy as the rest), and
// a record whose offset has a decision (State.Decided) reuses it, digest
// events included, instead of deciding again. State.Prune drops the
// decisions of offsets known to be committed. Outcome.Due is not recorded:
// the first PutPolicy wrote the due entry.
//
// # Reloads
//
// A Policy is immutable; a reload builds a new one and states carry over.
// Rate logs and cap counters of types no longer configured (or no longer
// rate-limited or capped) are dropped by the next Apply (or Tick that
// closes a window). Open
// windows are kept whatever the policy: a window of a type removed by a
// reload still closes on its tick, with the default title and no cap.
// Changed windows apply to windows opened from then on; an open window
// keeps its due time.
//
// # Limits and defaults
//
//   - digest.window, rate.per: 1s to 7 days (168h, "7d"); required.
//   - rate.limit: 1 to 1000; rate.excess: "drop" (default) or "digest".
//   - daily_cap: 0 (none, the default) to 10000.
//   - digest.title: at most 256 characters; placeholders {newest},
//     {count}, {others}; a "{" always starts one.
//   - MaxOpenWindows = 64 open windows per user: an event that would open
//     the 65th is delivered as ordinary (Overflow, to be counted). The
//     same happens when the State is estimated past half of
//     MaxStateBytes (windows of long bodies), so that it stays storable.
//   - MaxStateBytes = 256 KiB encoded (store.MaxPolicyStateBytes).
//
// # Failure modes
//
//   - Encode fails (ErrStateTooLarge) for a state over MaxStateBytes. The
//     window guard above keeps realistic states far below it, but it
//     estimates unescaped sizes, so adversarial content (bodies of control
//     characters, six bytes each in JSON), many rate logs at limit 1000, or
//     decisions never pruned can still get there. The caller must then not
//     write the state: keep the stored one and deliver the record as
//     ordinary (Overflow).
//   - Decode fails for bytes this package did not write (corrupt JSON,
//     broken invariants: a null window, unsorted logs or decisions, a
//     window number not below NextWindow). The caller decides between
//     starting the user over from an empty State (losing open windows,
//     and restarting digest numbers: later digests may be deduplicated
//     away) and stopping.
//   - A tick that is lost (its due entry dropped after
//     store.PolicyDueRetention) leaves its window open until the user's
//     next event of that key closes it inline.
//   - The digest's first_at and last_at are the events' CreatedAt at
//     microsecond precision.
package policy
