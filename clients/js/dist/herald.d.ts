import { type Page } from './http.js';
import type { ConnectionState, HeraldEvents, HeraldOptions, TransportName } from './types.js';
export * from './types.js';
export { Backoff, backoffCeiling } from './backoff.js';
export { RECENT_BROADCASTS } from './broadcasts.js';
export { jwtSubject, cursorKey } from './cursor.js';
export { HTTPError } from './http.js';
export type { ListParams, Page } from './http.js';
/** The transports in the order 'auto' tries them. */
export declare const TRANSPORTS: readonly TransportName[];
/** A connection open this long resets the backoff (ms). */
export declare const STABLE_MS = 30000;
/** After about this long on a lower transport, 'auto' tries the top one again (ms, ± UP_JITTER_MS). */
export declare const UP_AFTER_MS = 60000;
export declare const UP_JITTER_MS = 10000;
/** Consecutive 4001 / HTTP 401 answers after which the client gives up. */
export declare const MAX_AUTH_FAILURES = 3;
/** The largest delay of a reconnect after 1012 (server restarting), ms. */
export declare const RESTART_JITTER_MS = 1000;
type Listener<K extends keyof HeraldEvents> = (payload: HeraldEvents[K]) => void;
export declare class Herald {
    private readonly env;
    private readonly base;
    private readonly mode;
    private readonly storage;
    private readonly wantShared;
    private readonly liveBroadcasts;
    /** With liveBroadcasts: what this tab emitted, to merge broadcasts and notifications. */
    private readonly merge;
    private readonly listeners;
    private readonly backoff;
    private readonly catchUpBackoff;
    private readonly tabId;
    private info;
    private unreadCount;
    private token;
    private user;
    private cur;
    private seq;
    private api;
    private readonly started;
    private tier;
    private current;
    private authFailures;
    private isLeader;
    private closed;
    private bus;
    private election;
    private reconnectTimer;
    private stableTimer;
    private upTimer;
    private catchUpTimer;
    private quiet;
    /**
     * Whether the current connection is past its synced: from then on the client counts new
     * unread ones itself (WebSocket and SSE send a count only at synced and after reads).
     */
    private live;
    private readonly onOnline;
    constructor(options: HeraldOptions);
    private readonly getToken;
    /** Subscribes to an event; returns the function that unsubscribes. */
    on<K extends keyof HeraldEvents>(event: K, fn: Listener<K>): () => void;
    off<K extends keyof HeraldEvents>(event: K, fn: Listener<K>): void;
    get state(): ConnectionState;
    get transport(): TransportName | null;
    /** The unread count, null until the server told it. */
    get unread(): number | null;
    /** The highest seq delivered (0 before any). */
    get cursor(): number;
    /** The JWT's sub, null until the token is known. */
    get userId(): string | null;
    /** Whether this tab holds the connection. */
    get leader(): boolean;
    /** Marks notifications read (POST /v1/notifications/read); resolves to the new unread count. */
    markRead(seqs: number[] | 'all'): Promise<number>;
    /** GET /v1/notifications (history for the app; does not move the cursor). */
    list(params?: {
        after?: number;
        limit?: number;
        unreadOnly?: boolean;
    }): Promise<Page>;
    /** Closes the connection for good (and hands leadership to another tab). */
    close(): void;
    private start;
    private lead;
    private follow;
    private connect;
    private opened;
    /** Tries the top transport again after a while on a lower one. */
    private moveUp;
    private closedWith;
    private unauthorized;
    private retry;
    private dropTransport;
    /** HTTP calls with one token refresh on 401. */
    private withAuth;
    private deliver;
    /**
     * A live broadcast, from the transport (leader) or relayed (follower): emitted unless this
     * tab emitted it already or delivered its notification. It moves no cursor and no count.
     */
    private broadcast;
    private setUnread;
    private setState;
    private relayed;
    /** A follower fetches what it missed after its cursor. */
    private catchUp;
    private scheduleCatchUp;
    private emit;
    private clearTimer;
    private shutdown;
}
export default Herald;
