// Package prefcache caches users' preferences in Redis in front of a
// store.Store. The enricher reads a user's preferences for every event;
// with the cache most of those reads are one Redis GET instead of a
// Cassandra query.
//
// Entries are JSON under <prefix>prefs:<user> (prefix "herald:" by
// default) with a TTL (5 minutes by default). PutPreferences writes the
// inner store first, then deletes the entry.
//
// Filling without resurrecting old values: a reader that misses takes a
// lease (SET NX of a random token) before reading the inner store, and
// stores what it read only if its lease is still the key's value (a
// compare-and-set script). A PutPreferences in between deletes the lease,
// so a value read before the write can never be cached after it. A reader
// that finds someone else's lease reads the inner store and caches
// nothing.
//
// Redis is an optimisation, never a dependency: any Redis error (or a
// call slower than Config.Timeout) falls back to the inner store, is
// counted and logged (rate-limited), and reads skip Redis for the next
// second, so a Redis that hangs slows readers by one Timeout per second at
// most, not one per read. One residual risk: if the delete
// after a PutPreferences fails (Redis unreachable at that moment) while
// the entry survives (Redis comes back with it), readers may see the old
// preferences until the entry's TTL runs out.
package prefcache
