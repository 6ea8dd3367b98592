import type { Cursor } from './cursor.js';
import type { Notification, ResyncInfo } from './types.js';
export interface SequencerHooks {
    /** Notifications with seq > after, ascending (one page; the sequencer pages itself). */
    fetchAfter(after: number): Promise<Notification[]>;
    deliver(n: Notification): void;
    resync(info: ResyncInfo): void;
}
/** How many recent seq → id pairs are kept to tell a duplicate from a conflict. */
export declare const RECENT_IDS = 256;
export declare class Sequencer {
    readonly cursor: Cursor;
    private readonly hooks;
    /**
     * Whether a prev that differs from the cursor triggers a gap fetch. Off during the
     * unread-only replay of a first connection without a cursor, where gaps are expected
     * (read notifications are not replayed), and turned on by synced().
     */
    checkGaps: boolean;
    private readonly recent;
    private tail;
    constructor(cursor: Cursor, hooks: SequencerHooks);
    /**
     * Queues n behind the notifications before it; checkGaps overrides the field for it
     * (a follower gets the leader's setting along with the notification). The promise rejects when a gap could not
     * be filled (the cursor then stays before the gap, so a reconnect or retry replays it).
     */
    push(n: Notification, checkGaps?: boolean): Promise<void>;
    /** The server's synced seq: adopts it (first connection) or notices a rewind. */
    synced(seq: number): Promise<void>;
    /** Fetches and delivers everything after the cursor (a follower catching up). */
    catchUp(): Promise<void>;
    /** Runs fn after everything queued so far (keeps counts and states in frame order). */
    then(fn: () => void): Promise<void>;
    /** Resolves once everything queued so far has been handled. */
    idle(): Promise<void>;
    private enqueue;
    private handle;
    /** Fetches pages after the cursor and delivers those below `until`. */
    private fill;
    private accept;
    private forgetAbove;
}
