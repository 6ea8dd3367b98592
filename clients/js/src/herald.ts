// The Herald client: live notifications over WebSocket, SSE or long poll, resumed from a
// stored cursor, shared by the tabs of a browser.

import { Backoff } from './backoff.js';
import { BroadcastMerge } from './broadcasts.js';
import { Cursor, cursorKey, jwtSubject } from './cursor.js';
import { API, HTTPError, type ListParams, type Page } from './http.js';
import { Bus, BroadcastElection, LockElection, type BusMessage, type Election } from './leader.js';
import { Sequencer } from './sequencer.js';
import { LongPollTransport } from './transports/longpoll.js';
import { SSETransport } from './transports/sse.js';
import { Close, type CloseInfo, type Transport, type TransportContext } from './transports/transport.js';
import { WebSocketTransport } from './transports/websocket.js';
import { defaultStorage, defaultURL, resolveEnv, type ResolvedEnv } from './env.js';
import type {
  Broadcast,
  ConnectionState,
  CursorStorage,
  HeraldEvents,
  HeraldOptions,
  Notification,
  StateInfo,
  TimerId,
  TransportName,
} from './types.js';

export * from './types.js';
export { Backoff, backoffCeiling } from './backoff.js';
export { RECENT_BROADCASTS } from './broadcasts.js';
export { jwtSubject, cursorKey } from './cursor.js';
export { HTTPError } from './http.js';
export type { ListParams, Page } from './http.js';

/** The transports in the order 'auto' tries them. */
export const TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'longpoll'];
/** A connection open this long resets the backoff (ms). */
export const STABLE_MS = 30000;
/** After about this long on a lower transport, 'auto' tries the top one again (ms, ± UP_JITTER_MS). */
export const UP_AFTER_MS = 60000;
export const UP_JITTER_MS = 10000;
/** Consecutive 4001 / HTTP 401 answers after which the client gives up. */
export const MAX_AUTH_FAILURES = 3;
/** The largest delay of a reconnect after 1012 (server restarting), ms. */
export const RESTART_JITTER_MS = 1000;

type Listener<K extends keyof HeraldEvents> = (payload: HeraldEvents[K]) => void;

export class Herald {
  private readonly env: ResolvedEnv;
  private readonly base: string;
  private readonly mode: 'auto' | TransportName;
  private readonly storage: CursorStorage | null;
  private readonly wantShared: boolean;
  private readonly liveBroadcasts: boolean;
  /** With liveBroadcasts: what this tab emitted, to merge broadcasts and notifications. */
  private readonly merge: BroadcastMerge | null;
  private readonly listeners = new Map<keyof HeraldEvents, Set<(p: never) => void>>();
  private readonly backoff: Backoff;
  private readonly catchUpBackoff: Backoff;
  private readonly tabId: string;

  private info: StateInfo = { state: 'connecting', transport: null, leader: false };
  private unreadCount: number | null = null;
  private token = '';
  private user: string | null = null;
  private cur: Cursor | null = null;
  private seq: Sequencer | null = null;
  private api: API | null = null;
  private readonly started: Promise<void>;

  private tier = 0;
  private current: Transport | null = null;
  private authFailures = 0;
  private isLeader = false;
  private closed = false;
  private bus: Bus | null = null;
  private election: Election | null = null;
  private reconnectTimer: TimerId | null = null;
  private stableTimer: TimerId | null = null;
  private upTimer: TimerId | null = null;
  private catchUpTimer: TimerId | null = null;
  private quiet = false;
  /**
   * Whether the current connection is past its synced: from then on the client counts new
   * unread ones itself (WebSocket and SSE send a count only at synced and after reads).
   */
  private live = false;
  private readonly onOnline = () => {
    if (this.isLeader && this.reconnectTimer !== null) this.connect();
  };

  constructor(options: HeraldOptions) {
    if (!options || typeof options !== 'object') throw new TypeError('herald: options are required');
    if (!options.token && !options.getToken) throw new TypeError('herald: options.token or options.getToken is required');
    if (options.getToken !== undefined && typeof options.getToken !== 'function')
      throw new TypeError('herald: options.getToken must be a function');
    const mode = options.transport ?? 'auto';
    if (mode !== 'auto' && !TRANSPORTS.includes(mode))
      throw new TypeError("herald: options.transport must be 'auto', 'websocket', 'sse' or 'longpoll'");
    if (options.liveBroadcasts !== undefined && typeof options.liveBroadcasts !== 'boolean')
      throw new TypeError('herald: options.liveBroadcasts must be a boolean');
    const url = options.url ?? defaultURL();
    if (!url || !/^https?:\/\//i.test(url)) throw new TypeError('herald: options.url must be an http(s) URL');
    this.base = url.replace(/\/+$/, '');
    this.mode = mode;
    this.tier = mode === 'auto' ? 0 : TRANSPORTS.indexOf(mode);
    this.env = resolveEnv(options.env);
    if (!this.env.fetch) throw new TypeError('herald: no fetch available (options.env.fetch)');
    this.storage = options.storage !== undefined ? options.storage : defaultStorage();
    this.wantShared = options.shared !== false;
    this.liveBroadcasts = options.liveBroadcasts === true;
    this.merge = this.liveBroadcasts ? new BroadcastMerge() : null;
    this.backoff = new Backoff({ random: this.env.random });
    this.catchUpBackoff = new Backoff({ random: this.env.random });
    this.tabId = this.env.random().toString(36).slice(2) + this.env.now().toString(36);
    this.getToken = options.getToken;
    this.token = options.token ?? '';
    // Started on a microtask so that listeners added right after construction see everything.
    this.started = Promise.resolve().then(() => this.start());
    this.started.catch(() => undefined);
  }

  private readonly getToken: HeraldOptions['getToken'];

  // ---- public API ----

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof HeraldEvents>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as (p: never) => void);
    return () => this.off(event, fn);
  }

  off<K extends keyof HeraldEvents>(event: K, fn: Listener<K>): void {
    this.listeners.get(event)?.delete(fn as (p: never) => void);
  }

  get state(): ConnectionState {
    return this.info.state;
  }
  get transport(): TransportName | null {
    return this.info.transport;
  }
  /** The unread count, null until the server told it. */
  get unread(): number | null {
    return this.unreadCount;
  }
  /** The highest seq delivered (0 before any). */
  get cursor(): number {
    return this.cur?.seq ?? 0;
  }
  /** The JWT's sub, null until the token is known. */
  get userId(): string | null {
    return this.user;
  }
  /** Whether this tab holds the connection. */
  get leader(): boolean {
    return this.isLeader;
  }

  /** Marks notifications read (POST /v1/notifications/read); resolves to the new unread count. */
  async markRead(seqs: number[] | 'all'): Promise<number> {
    if (seqs !== 'all' && (!Array.isArray(seqs) || seqs.length === 0))
      throw new TypeError("herald: markRead takes a non-empty array of seqs or 'all'");
    await this.started;
    const n = await this.withAuth(() => this.api!.markRead(seqs));
    // A follower tells the others (the leader relays it) rather than wait for the server's
    // unread frame, which the long poll would only see after its next page.
    if (!this.isLeader && !this.closed) this.bus?.post('unread', { count: n });
    this.setUnread(n);
    return n;
  }

  /** GET /v1/notifications (history for the app; does not move the cursor). */
  async list(params: { after?: number; limit?: number; unreadOnly?: boolean } = {}): Promise<Page> {
    await this.started;
    return this.withAuth(() => this.api!.list(params as ListParams));
  }

  /** Closes the connection for good (and hands leadership to another tab). */
  close(): void {
    if (this.closed) return;
    this.shutdown('closed', false);
  }

  // ---- start and leadership ----

  private async start(): Promise<void> {
    while (!this.token) {
      try {
        const t = await this.getToken!();
        if (typeof t !== 'string' || t === '') throw new Error('getToken returned no token');
        this.token = t;
      } catch (e) {
        // The app's token endpoint may be down for a moment: try again with backoff.
        this.env.logger.warn('herald: getToken failed:', e);
        if (this.closed) return;
        this.setState('offline', null, 'getToken failed');
        await new Promise<void>((r) => this.env.timers.setTimeout(r, this.backoff.next()));
        if (this.closed) return;
      }
    }
    this.backoff.reset();
    this.env.window?.addEventListener('online', this.onOnline);
    try {
      this.user = jwtSubject(this.token);
    } catch (e) {
      this.shutdown(e instanceof Error ? e.message : String(e), false);
      throw e;
    }
    if (this.closed) return;
    const cur = new Cursor(this.storage, cursorKey(this.user));
    this.cur = cur;
    this.api = new API(this.base, this.env.fetch!, () => this.token);
    this.seq = new Sequencer(cur, {
      fetchAfter: async (after) => (await this.api!.list({ after, limit: 500 })).notifications,
      deliver: (n) => this.deliver(n),
      resync: (info) => {
        this.emit('resync', info);
        // A replaced notification may have changed the count: ask.
        if (info.reason !== 'gap' && this.isLeader)
          this.api!.unreadCount().then(
            (c) => this.setUnread(c),
            () => undefined,
          );
      },
    });
    const { BroadcastChannel: BC, locks } = this.env;
    if (this.wantShared && BC) {
      const bus = new Bus(BC, 'herald:' + this.user, this.tabId);
      this.bus = bus;
      bus.subscribe((m) => this.relayed(m));
      this.election = locks
        ? new LockElection(locks, 'herald:' + this.user)
        : new BroadcastElection(bus, this.env.timers, this.env.random);
      this.follow();
      this.election.start({ lead: () => this.lead(), follow: () => this.follow() });
    } else {
      this.lead();
    }
  }

  private lead(): void {
    if (this.closed || this.isLeader) return;
    // Start where the previous leader ended up (a proxy that blocked its WebSocket blocks
    // this tab's too); the move-up timer still tries the top transport later.
    const was = this.info.transport;
    if (this.mode === 'auto' && was !== null) this.tier = TRANSPORTS.indexOf(was);
    this.isLeader = true;
    this.clearTimer('catchUpTimer');
    this.cur!.persist = true;
    if (this.cur!.seq === 0) {
      const stored = this.cur!.load();
      if (stored > 0) this.cur!.set(stored);
    }
    this.connect();
  }

  private follow(): void {
    if (this.closed) return;
    const was = this.isLeader;
    this.isLeader = false;
    this.cur!.persist = false;
    if (was) this.dropTransport();
    this.setState('connecting', null);
    this.bus!.post('hello');
  }

  // ---- connection (leader) ----

  private connect(): void {
    this.clearTimer('reconnectTimer');
    if (this.closed || !this.isLeader) return;
    let name = TRANSPORTS[this.tier];
    // Skip what this environment lacks (in 'auto'; a forced transport that is missing closes).
    while ((name === 'websocket' && !this.env.WebSocket) || (name === 'sse' && !this.env.EventSource)) {
      if (this.mode !== 'auto') {
        this.shutdown(name + ' is not available', true);
        return;
      }
      this.tier++;
      name = TRANSPORTS[this.tier];
    }
    const after = this.cur!.seq > 0 ? this.cur!.seq : null;
    this.seq!.checkGaps = after !== null;
    this.live = false;
    this.setState('connecting', name);
    let t: Transport | null = null;
    const mine = () => t !== null && this.current === t;
    const ctx: TransportContext = {
      base: this.base,
      token: this.token,
      after,
      liveBroadcasts: this.liveBroadcasts,
      api: this.api!,
      timers: this.env.timers,
      now: this.env.now,
      cursor: () => this.cur!.seq,
      idle: () => this.seq!.idle(),
      handlers: {
        open: () => {
          if (mine()) this.opened();
        },
        notification: (n) => {
          if (!mine()) return;
          this.seq!.push(n).catch((e: unknown) => {
            if (!mine()) return;
            this.env.logger.warn('herald: could not fill a gap:', e);
            const code = e instanceof HTTPError && e.status === 401 ? Close.unauthorized : Close.storeFailure;
            this.dropTransport();
            void this.closedWith(name, { code, reason: 'gap fill failed', opened: true });
          });
        },
        broadcast: (b) => {
          // Outside the seq order: emitted at once, never through the sequencer.
          if (mine()) this.broadcast(b);
        },
        synced: (seq, unread) => {
          if (!mine()) return;
          void this.seq!.synced(seq);
          void this.seq!.then(() => {
            if (!mine()) return;
            this.bus?.post('synced', { seq });
            this.authFailures = 0;
            // The long poll reads the exact count after every page: it needs no counting.
            this.live = name !== 'longpoll';
            this.setUnread(unread);
            this.setState('synced', name);
          });
        },
        unread: (count) => {
          if (mine()) void this.seq!.then(() => this.setUnread(count));
        },
        closed: (info) => {
          if (!mine()) return;
          this.current = null;
          this.clearTimer('stableTimer');
          this.clearTimer('upTimer');
          void this.closedWith(name, info);
        },
      },
    };
    if (name === 'websocket') t = new WebSocketTransport(this.env.WebSocket!, ctx);
    else if (name === 'sse') t = new SSETransport(this.env.EventSource!, ctx);
    else t = new LongPollTransport(ctx);
    this.current = t;
  }

  private opened(): void {
    this.setState('open', this.info.transport);
    this.clearTimer('stableTimer');
    this.stableTimer = this.env.timers.setTimeout(() => {
      this.stableTimer = null;
      this.backoff.reset();
    }, STABLE_MS);
    if (this.mode === 'auto' && this.tier > 0) {
      this.clearTimer('upTimer');
      const ms = UP_AFTER_MS + Math.floor((this.env.random() * 2 - 1) * UP_JITTER_MS);
      this.upTimer = this.env.timers.setTimeout(() => this.moveUp(), ms);
    }
  }

  /** Tries the top transport again after a while on a lower one. */
  private moveUp(): void {
    this.upTimer = null;
    if (this.closed || !this.isLeader || this.tier === 0 || !this.current) return;
    this.dropTransport();
    this.tier = 0;
    this.connect();
  }

  private async closedWith(name: TransportName, info: CloseInfo): Promise<void> {
    if (this.closed || !this.isLeader) return;
    const { code } = info;
    if (code === Close.unsupported || code === Close.invalidPayload || code === Close.tooBig)
      this.env.logger.warn('herald: the server closed with', code, info.reason, '(a client bug)');
    this.setState('offline', name, info.reason || 'closed ' + code);
    if (code === Close.unauthorized) return this.unauthorized();
    if (!info.opened && name !== 'longpoll') {
      // Did the upgrade/stream fail, or is the server unreachable, or the token bad?
      // One cheap authenticated request tells them apart.
      let count: number;
      try {
        count = await this.api!.unreadCount();
      } catch (e) {
        if (this.closed || !this.isLeader) return;
        if (e instanceof HTTPError && e.status === 401) return this.unauthorized();
        return this.retry(this.backoff.next());
      }
      if (this.closed || !this.isLeader) return;
      this.setUnread(count);
      if (this.mode === 'auto' && this.tier < TRANSPORTS.length - 1) {
        this.tier++;
        this.env.logger.debug?.('herald:', name, 'did not connect; trying', TRANSPORTS[this.tier]);
        return this.retry(0);
      }
      return this.retry(this.backoff.next());
    }
    if (code === Close.restarting) return this.retry(Math.floor(this.env.random() * RESTART_JITTER_MS));
    return this.retry(this.backoff.next());
  }

  private async unauthorized(): Promise<void> {
    this.authFailures++;
    if (this.authFailures >= MAX_AUTH_FAILURES || !this.getToken) {
      this.shutdown('unauthorized', true);
      return;
    }
    try {
      const t = await this.getToken();
      if (t) {
        let sub: string | null = null;
        try {
          sub = jwtSubject(t);
        } catch {
          // kept as is: the server will answer 401 if it is not a token
        }
        if (sub !== null && sub !== this.user)
          this.env.logger.warn('herald: getToken returned a token for', sub, 'instead of', this.user);
        this.token = t;
      }
    } catch (e) {
      this.env.logger.warn('herald: getToken failed:', e);
    }
    if (this.closed || !this.isLeader) return;
    this.retry(this.backoff.next());
  }

  private retry(ms: number): void {
    if (this.closed || !this.isLeader) return;
    this.clearTimer('reconnectTimer');
    this.reconnectTimer = this.env.timers.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, ms);
  }

  private dropTransport(): void {
    const t = this.current;
    this.current = null;
    this.clearTimer('stableTimer');
    this.clearTimer('upTimer');
    this.clearTimer('reconnectTimer');
    t?.close();
  }

  /** HTTP calls with one token refresh on 401. */
  private async withAuth<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof HTTPError && e.status === 401 && this.getToken)) throw e;
      this.token = await this.getToken();
      return fn();
    }
  }

  // ---- delivery and relay ----

  private deliver(n: Notification): void {
    // Gaps are expected in an unread-only replay: the followers must not fill them either.
    if (this.isLeader) this.bus?.post('notification', { n, gaps: this.seq!.checkGaps });
    // Each tab merges with the broadcasts it emitted itself (a follower relays none).
    if (this.merge && typeof n.event_id === 'string' && n.event_id !== '' && this.merge.notification(n.event_id))
      this.emit('notification', { ...n, supersedes: n.event_id });
    else this.emit('notification', n);
    // The server sends an unread count after reads only; a new unread notification after
    // synced (whose count covered the replay) adds one. The leader counts and relays.
    if (this.isLeader && this.live && !n.read && this.unreadCount !== null) this.setUnread(this.unreadCount + 1);
  }

  /**
   * A live broadcast, from the transport (leader) or relayed (follower): emitted unless this
   * tab emitted it already or delivered its notification. It moves no cursor and no count.
   */
  private broadcast(b: Broadcast): void {
    if (!this.merge || !b || typeof b !== 'object' || typeof b.event_id !== 'string' || b.event_id === '') return;
    if (!this.merge.broadcast(b.event_id)) return;
    if (this.isLeader) this.bus?.post('broadcast', { b });
    this.emit('broadcast', b);
  }

  private setUnread(n: number): void {
    if (this.isLeader) this.bus?.post('unread', { count: n });
    if (n === this.unreadCount) return;
    this.unreadCount = n;
    this.emit('unread', n);
  }

  private setState(state: ConnectionState, transport: TransportName | null, reason?: string): void {
    if (this.isLeader && !this.quiet) this.bus?.post('state', { state, transport, reason });
    const i = this.info;
    if (i.state === state && i.transport === transport && i.leader === this.isLeader && i.reason === reason) return;
    this.info = { state, transport, leader: this.isLeader };
    if (reason !== undefined) this.info.reason = reason;
    this.emit('state', { ...this.info });
  }

  private relayed(m: BusMessage): void {
    if (this.closed) return;
    if (this.isLeader) {
      if (m.t === 'unread') this.setUnread(Number(m.count));
      else if (m.t === 'hello')
        this.bus!.post('welcome', {
          cursor: this.cur!.seq,
          unread: this.unreadCount,
          state: this.info.state,
          transport: this.info.transport,
        });
      return;
    }
    switch (m.t) {
      case 'notification':
        this.seq!.push(m.n as Notification, m.gaps !== false).catch(() => this.scheduleCatchUp());
        break;
      case 'broadcast':
        this.broadcast(m.b as Broadcast);
        break;
      case 'synced':
        void this.seq!.synced(Number(m.seq) || 0);
        break;
      case 'unread':
        this.setUnread(Number(m.count));
        break;
      case 'state':
        this.setState(m.state as ConnectionState, m.transport as TransportName | null, m.reason as string | undefined);
        break;
      case 'welcome': {
        if (typeof m.unread === 'number') this.setUnread(m.unread);
        this.setState(m.state as ConnectionState, m.transport as TransportName | null);
        const theirs = Number(m.cursor) || 0;
        if (this.cur!.seq === 0) this.cur!.set(theirs);
        else if (this.cur!.seq < theirs) this.catchUp();
        break;
      }
    }
  }

  /** A follower fetches what it missed after its cursor. */
  private catchUp(): void {
    this.seq!.catchUp().then(
      () => this.catchUpBackoff.reset(),
      () => this.scheduleCatchUp(),
    );
  }

  private scheduleCatchUp(): void {
    if (this.closed || this.isLeader || this.catchUpTimer !== null) return;
    this.catchUpTimer = this.env.timers.setTimeout(() => {
      this.catchUpTimer = null;
      if (!this.closed && !this.isLeader) this.catchUp();
    }, 1000 + this.catchUpBackoff.next());
  }

  private emit<K extends keyof HeraldEvents>(event: K, payload: HeraldEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<K>)(payload);
      } catch (e) {
        this.env.logger.warn('herald: a', event, 'listener threw:', e);
      }
    }
  }

  private clearTimer(k: 'reconnectTimer' | 'stableTimer' | 'upTimer' | 'catchUpTimer'): void {
    const id = this[k];
    if (id !== null) {
      this.env.timers.clearTimeout(id);
      this[k] = null;
    }
  }

  private shutdown(reason: string, relay: boolean): void {
    if (this.closed) return;
    this.dropTransport();
    this.clearTimer('catchUpTimer');
    // A tab that closes hands over to the next leader: its followers need not see 'closed'.
    // A leader that gives up (unauthorized) tells them why.
    if (!relay) this.quiet = true;
    this.setState('closed', null, reason);
    this.closed = true;
    this.election?.stop();
    this.bus?.close();
    this.env.window?.removeEventListener('online', this.onOnline);
    this.isLeader = false;
  }
}

export default Herald;
