import type { BroadcastChannelCtor, LockManagerLike } from './types.js';
import type { Timers } from './transports/transport.js';
/** A message on the channel. `from` is the sending tab's random id. */
export interface BusMessage {
    t: string;
    from: string;
    [k: string]: unknown;
}
/** The BroadcastChannel of a user, shared by the relay and the fallback election. */
export declare class Bus {
    readonly tabId: string;
    private readonly ch;
    private readonly subs;
    constructor(ctor: BroadcastChannelCtor, name: string, tabId: string);
    post(t: string, body?: Record<string, unknown>): void;
    subscribe(fn: (m: BusMessage) => void): () => void;
    close(): void;
}
export interface ElectionCallbacks {
    /** This tab became the leader. */
    lead(): void;
    /** This tab is no longer the leader (only the BroadcastChannel election demotes). */
    follow(): void;
}
export interface Election {
    start(cb: ElectionCallbacks): void;
    /** Gives up leadership (or the wait for it). */
    stop(): void;
}
/** Leader = holder of the Web Lock `name`, held until stop() or the tab goes away. */
export declare class LockElection implements Election {
    private readonly locks;
    private readonly name;
    private release;
    private abort;
    private stopped;
    constructor(locks: LockManagerLike, name: string);
    start(cb: ElectionCallbacks): void;
    stop(): void;
}
/** Heartbeat interval of the BroadcastChannel election (ms). */
export declare const HEARTBEAT_MS = 1000;
/** A leader silent this long is taken for gone (ms). */
export declare const LEADER_TIMEOUT_MS = 3000;
/** How long a candidate waits for an objection before it leads (ms). */
export declare const CLAIM_MS = 300;
/**
 * The fallback election over the channel: a candidate announces a claim and leads unless,
 * within CLAIM_MS, it hears a leader's heartbeat or a claim from a smaller tab id. The
 * leader sends a heartbeat every HEARTBEAT_MS and answers claims at once; followers stand
 * as candidates when they hear nothing for LEADER_TIMEOUT_MS or the leader says bye.
 * Two leaders (a partition that healed) resolve to the smaller id.
 */
export declare class BroadcastElection implements Election {
    private readonly bus;
    private readonly timers;
    private readonly random;
    private role;
    private timer;
    private unsub;
    private cb;
    constructor(bus: Bus, timers: Timers, random: () => number);
    start(cb: ElectionCallbacks): void;
    stop(): void;
    private message;
    private stand;
    private lead;
    private beat;
    private demote;
    private watch;
    private clear;
}
