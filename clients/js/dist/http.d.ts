import type { FetchLike, Notification } from './types.js';
/** An HTTP answer that was not 2xx. */
export declare class HTTPError extends Error {
    readonly status: number;
    constructor(status: number, message: string);
}
export interface Page {
    notifications: Notification[];
    next: number;
}
export interface ListParams {
    after?: number;
    limit?: number;
    unreadOnly?: boolean;
    /** Long poll: hold the request up to this many seconds (0–60). */
    wait?: number;
}
export declare class API {
    readonly base: string;
    private readonly fetchFn;
    private readonly token;
    constructor(base: string, fetchFn: FetchLike, token: () => string);
    list(p?: ListParams, signal?: AbortSignal): Promise<Page>;
    unreadCount(signal?: AbortSignal): Promise<number>;
    markRead(seqs: number[] | 'all'): Promise<number>;
    private call;
}
