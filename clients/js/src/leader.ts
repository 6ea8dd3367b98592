// One connection per browser: the tabs of one origin and user elect a leader, which alone
// connects and relays what it receives over a BroadcastChannel named herald:<userId>.
// With the Web Locks API the leader is the holder of the lock herald:<userId> (the browser
// releases it when the tab goes away, and hands it to the next waiting tab at once);
// without it, tabs elect one over the BroadcastChannel by heartbeats.

import type { BroadcastChannelCtor, BroadcastChannelLike, LockManagerLike, TimerId } from './types.js';
import type { Timers } from './transports/transport.js';

/** A message on the channel. `from` is the sending tab's random id. */
export interface BusMessage {
  t: string;
  from: string;
  [k: string]: unknown;
}

/** The BroadcastChannel of a user, shared by the relay and the fallback election. */
export class Bus {
  private readonly ch: BroadcastChannelLike;
  private readonly subs = new Set<(m: BusMessage) => void>();

  constructor(ctor: BroadcastChannelCtor, name: string, readonly tabId: string) {
    this.ch = new ctor(name);
    this.ch.onmessage = (ev) => {
      const m = ev.data as BusMessage | null;
      if (!m || typeof m !== 'object' || typeof m.t !== 'string' || m.from === this.tabId) return;
      for (const fn of [...this.subs]) fn(m);
    };
  }

  post(t: string, body: Record<string, unknown> = {}): void {
    try {
      this.ch.postMessage({ ...body, t, from: this.tabId });
    } catch {
      // closed channel
    }
  }

  subscribe(fn: (m: BusMessage) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  close(): void {
    this.subs.clear();
    this.ch.onmessage = null;
    try {
      this.ch.close();
    } catch {
      // ignore
    }
  }
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
export class LockElection implements Election {
  private release: (() => void) | null = null;
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(
    private readonly locks: LockManagerLike,
    private readonly name: string,
  ) {}

  start(cb: ElectionCallbacks): void {
    this.abort = typeof AbortController === 'function' ? new AbortController() : null;
    const opts = this.abort ? { signal: this.abort.signal } : {};
    this.locks
      .request(this.name, opts, () => {
        if (this.stopped) return Promise.resolve();
        return new Promise<void>((resolve) => {
          this.release = resolve;
          cb.lead();
        });
      })
      .catch(() => {
        // aborted by stop() while waiting
      });
  }

  stop(): void {
    this.stopped = true;
    if (this.release) {
      this.release();
      this.release = null;
    } else {
      this.abort?.abort();
    }
  }
}

/** Heartbeat interval of the BroadcastChannel election (ms). */
export const HEARTBEAT_MS = 1000;
/** A leader silent this long is taken for gone (ms). */
export const LEADER_TIMEOUT_MS = 3000;
/** How long a candidate waits for an objection before it leads (ms). */
export const CLAIM_MS = 300;

/**
 * The fallback election over the channel: a candidate announces a claim and leads unless,
 * within CLAIM_MS, it hears a leader's heartbeat or a claim from a smaller tab id. The
 * leader sends a heartbeat every HEARTBEAT_MS and answers claims at once; followers stand
 * as candidates when they hear nothing for LEADER_TIMEOUT_MS or the leader says bye.
 * Two leaders (a partition that healed) resolve to the smaller id.
 */
export class BroadcastElection implements Election {
  private role: 'follower' | 'candidate' | 'leader' | 'stopped' = 'follower';
  private timer: TimerId | null = null;
  private unsub: (() => void) | null = null;
  private cb: ElectionCallbacks | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly timers: Timers,
    private readonly random: () => number,
  ) {}

  start(cb: ElectionCallbacks): void {
    this.cb = cb;
    this.unsub = this.bus.subscribe((m) => this.message(m));
    this.stand();
  }

  stop(): void {
    if (this.role === 'leader') this.bus.post('bye');
    this.role = 'stopped';
    this.clear();
    this.unsub?.();
    this.unsub = null;
  }

  private message(m: BusMessage): void {
    const me = this.bus.tabId;
    switch (m.t) {
      case 'hb':
        if (this.role === 'leader') {
          if (m.from < me) this.demote();
        } else if (this.role !== 'stopped') {
          this.role = 'follower';
          this.watch();
        }
        break;
      case 'claim':
        if (this.role === 'leader') this.bus.post('hb');
        else if (this.role === 'candidate' && m.from < me) {
          this.role = 'follower';
          this.watch();
        }
        break;
      case 'bye':
        if (this.role === 'follower') {
          this.clear();
          // A little jitter so that the followers do not all claim at once.
          this.timer = this.timers.setTimeout(() => this.stand(), Math.floor(this.random() * 100));
        }
        break;
    }
  }

  private stand(): void {
    if (this.role === 'stopped' || this.role === 'leader') return;
    this.role = 'candidate';
    this.bus.post('claim');
    this.clear();
    this.timer = this.timers.setTimeout(() => {
      if (this.role === 'candidate') this.lead();
    }, CLAIM_MS);
  }

  private lead(): void {
    this.role = 'leader';
    this.bus.post('hb');
    this.beat();
    this.cb?.lead();
  }

  private beat(): void {
    this.clear();
    this.timer = this.timers.setTimeout(() => {
      if (this.role !== 'leader') return;
      this.bus.post('hb');
      this.beat();
    }, HEARTBEAT_MS);
  }

  private demote(): void {
    this.role = 'follower';
    this.watch();
    this.cb?.follow();
  }

  private watch(): void {
    this.clear();
    this.timer = this.timers.setTimeout(() => this.stand(), LEADER_TIMEOUT_MS);
  }

  private clear(): void {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
