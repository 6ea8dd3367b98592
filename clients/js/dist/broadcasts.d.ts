/** How many event ids the merge remembers, of broadcasts and of notifications each. */
export declare const RECENT_BROADCASTS = 1024;
export declare class BroadcastMerge {
    private readonly limit;
    /** Event ids of the broadcasts emitted whose notification was not delivered yet. */
    private readonly shown;
    /** Event ids of the notifications delivered. */
    private readonly delivered;
    constructor(limit?: number);
    /**
     * Whether the broadcast with this event id is to be emitted: not emitted before, and its
     * notification not delivered yet. Remembers it when it is.
     */
    broadcast(eventId: string): boolean;
    /**
     * A notification with this event id is delivered: whether it supersedes a broadcast
     * emitted before (once: a later notification with the same event id does not).
     */
    notification(eventId: string): boolean;
    private remember;
}
