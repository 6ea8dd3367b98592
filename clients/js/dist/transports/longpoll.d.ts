import { type Transport, type TransportContext } from './transport.js';
/** Seconds a poll is held by the server (it allows 0–60). */
export declare const LONGPOLL_WAIT = 25;
/** Page size of the polls. */
export declare const LONGPOLL_LIMIT = 100;
/**
 * A held poll that comes back empty sooner than this (a server that ignores wait) is
 * followed by a pause of LONGPOLL_PAUSE_MS instead of the next poll at once.
 */
export declare const LONGPOLL_MIN_EMPTY_MS = 1000;
export declare const LONGPOLL_PAUSE_MS = 5000;
export declare class LongPollTransport implements Transport {
    private readonly ctx;
    readonly name: "longpoll";
    private done;
    private opened;
    private pause;
    private readonly abort;
    constructor(ctx: TransportContext);
    close(): void;
    private get signal();
    private opening;
    private run;
    /**
     * A first connection without a cursor: like the WebSocket, hand over the unread
     * notifications and then start from the inbox head.
     */
    private walk;
    private end;
}
