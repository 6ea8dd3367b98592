// Live broadcasts (docs/ARCHITECTURE.md, "Live broadcasts"): with liveBroadcasts the server
// sends a broadcast to a large audience ahead of its inbox copy, outside the seq order,
// and the same broadcast follows as an ordinary notification with the same event_id. The
// merge remembers, per tab, the event ids of the broadcasts it emitted and of the
// notifications it delivered, so that each broadcast is emitted at most once, never after
// its notification, and the notification that follows it says it supersedes it.

/** How many event ids the merge remembers, of broadcasts and of notifications each. */
export const RECENT_BROADCASTS = 1024;

export class BroadcastMerge {
  /** Event ids of the broadcasts emitted whose notification was not delivered yet. */
  private readonly shown = new Set<string>();
  /** Event ids of the notifications delivered. */
  private readonly delivered = new Set<string>();

  constructor(private readonly limit = RECENT_BROADCASTS) {}

  /**
   * Whether the broadcast with this event id is to be emitted: not emitted before, and its
   * notification not delivered yet. Remembers it when it is.
   */
  broadcast(eventId: string): boolean {
    if (this.shown.has(eventId) || this.delivered.has(eventId)) return false;
    this.remember(this.shown, eventId);
    return true;
  }

  /**
   * A notification with this event id is delivered: whether it supersedes a broadcast
   * emitted before (once: a later notification with the same event id does not).
   */
  notification(eventId: string): boolean {
    const supersedes = this.shown.delete(eventId);
    this.delivered.delete(eventId);
    this.remember(this.delivered, eventId);
    return supersedes;
  }

  private remember(set: Set<string>, eventId: string): void {
    set.add(eventId);
    if (set.size > this.limit) set.delete(set.values().next().value as string);
  }
}
