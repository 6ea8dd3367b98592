import type { Timers } from './transports/transport.js';
import type { CursorStorage, Environment, Logger } from './types.js';
export interface ResolvedEnv {
    WebSocket: Environment['WebSocket'];
    EventSource: Environment['EventSource'];
    fetch: NonNullable<Environment['fetch']> | null;
    BroadcastChannel: Environment['BroadcastChannel'];
    locks: Environment['locks'];
    timers: Timers;
    random: () => number;
    now: () => number;
    logger: Logger;
    window: Environment['window'];
}
export declare function resolveEnv(e?: Environment): ResolvedEnv;
export declare function defaultStorage(): CursorStorage | null;
export declare function defaultURL(): string | undefined;
