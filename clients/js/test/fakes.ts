// Fakes of the browser APIs and of time, for the unit tests.

import type {
  Broadcast,
  BroadcastChannelLike,
  Environment,
  EventSourceLike,
  LockManagerLike,
  MessageEventLike,
  Notification,
  ResponseLike,
  WebSocketLike,
} from '../src/types.js';

/** Lets pending promise callbacks run (no real time passes). */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock {
  now = 0;
  private seq = 0;
  timers = new Map<number, { at: number; fn: () => void; ms: number }>();

  setTimeout = (fn: () => void, ms: number): number => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.now + Math.max(0, ms), fn, ms });
    return id;
  };
  clearTimeout = (id: unknown): void => {
    this.timers.delete(id as number);
  };

  /** Delays of the pending timers, in ms from now, ascending. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Moves time forward, running due timers in order and flushing promises after each. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await flush();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await flush();
    }
    this.now = end;
  }
}

/** A seeded random source (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: string[] = [];
  closedByClient = false;
  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }
  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
  send(d: string): void {
    this.sent.push(d);
  }
  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: unknown): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  notify(n: Notification): void {
    this.frame({ type: 'notification', notification: n });
  }
  synced(seq: number, unread: number): void {
    this.frame({ type: 'synced', seq, unread });
  }
  broadcast(b: Broadcast): void {
    this.frame({ type: 'broadcast', broadcast: b });
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** An upgrade refused: error then close 1006, never open. */
  fail(): void {
    this.onerror?.({});
    this.serverClose(1006);
  }
}

export class FakeEventSource implements EventSourceLike {
  static instances: FakeEventSource[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  private listeners = new Map<string, ((ev: MessageEventLike) => void)[]>();
  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }
  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
  addEventListener(type: string, fn: (ev: MessageEventLike) => void): void {
    const l = this.listeners.get(type) ?? [];
    l.push(fn);
    this.listeners.set(type, l);
  }
  close(): void {
    this.closed = true;
    this.readyState = 2;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  event(type: string, data: unknown, id?: string): void {
    for (const fn of this.listeners.get(type) ?? []) fn({ data: JSON.stringify(data), lastEventId: id });
  }
  fail(): void {
    this.onerror?.({});
  }
}

export interface Call {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: unknown;
}

/**
 * A fake Herald HTTP API over an in-memory inbox. `hold` makes long polls wait until
 * release() or a new notification.
 */
export class FakeServer {
  inbox: Notification[] = [];
  unread = 0;
  calls: Call[] = [];
  /** Status to answer every request with (e.g. 401), or null for normal answers. */
  status: number | null = null;
  /** Answer only unread_count with this status (the probe), or null. */
  down = false;
  private waiters: (() => void)[] = [];

  add(...ns: Notification[]): void {
    this.inbox.push(...ns);
    this.inbox.sort((a, b) => a.seq - b.seq);
    for (const w of this.waiters.splice(0)) w();
  }

  release(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  fetch = async (
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<ResponseLike> => {
    const u = new URL(url);
    const call: Call = { method: init.method ?? 'GET', url: u, headers: init.headers ?? {} };
    if (init.body) call.body = JSON.parse(init.body);
    this.calls.push(call);
    if (this.down) throw new TypeError('fetch failed');
    if (this.status !== null) return resp(this.status, { error: 'status ' + this.status });
    if (u.pathname === '/v1/notifications/unread_count') return resp(200, { unread: this.unread });
    if (u.pathname === '/v1/notifications/read') {
      const b = call.body as { seqs?: number[]; all?: boolean };
      if (b.all) this.unread = 0;
      else this.unread = Math.max(0, this.unread - (b.seqs?.length ?? 0));
      return resp(200, { unread: this.unread });
    }
    if (u.pathname === '/v1/notifications') {
      const after = Number(u.searchParams.get('after') ?? 0);
      const limit = Number(u.searchParams.get('limit') ?? 50);
      const wait = Number(u.searchParams.get('wait') ?? 0);
      const unreadOnly = u.searchParams.get('unread_only') === 'true';
      const page = () =>
        this.inbox.filter((n) => n.seq > after && (!unreadOnly || !n.read)).slice(0, limit);
      let p = page();
      if (p.length === 0 && wait > 0) {
        await new Promise<void>((r) => this.waiters.push(r));
        p = page();
      }
      return resp(200, { notifications: p, next: p.length ? p[p.length - 1].seq : after });
    }
    return resp(404, { error: 'no route' });
  };

  callsTo(path: string): Call[] {
    return this.calls.filter((c) => c.url.pathname === path);
  }
}

function resp(status: number, body: unknown): ResponseLike {
  return { ok: status >= 200 && status < 300, status, json: async () => body };
}

export class MemoryStorage {
  map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, v);
  }
}

/** An in-memory BroadcastChannel: every instance of a name hears every other one. */
export class FakeBroadcastHub {
  private chans = new Map<string, Set<FakeChannel>>();
  ctor = (() => {
    const hub = this;
    return class implements BroadcastChannelLike {
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      private readonly self: FakeChannel;
      constructor(readonly name: string) {
        this.self = { ch: this, name };
        hub.join(this.self);
      }
      postMessage(msg: unknown): void {
        hub.post(this.self, msg);
      }
      close(): void {
        hub.leave(this.self);
      }
    };
  })();
  join(c: FakeChannel): void {
    const s = this.chans.get(c.name) ?? new Set();
    s.add(c);
    this.chans.set(c.name, s);
  }
  leave(c: FakeChannel): void {
    this.chans.get(c.name)?.delete(c);
  }
  post(from: FakeChannel, msg: unknown): void {
    const data = structuredClone(msg);
    for (const c of this.chans.get(from.name) ?? []) {
      if (c === from) continue;
      // Asynchronous like the real thing.
      queueMicrotask(() => {
        if (this.chans.get(from.name)?.has(c)) c.ch.onmessage?.({ data });
      });
    }
  }
}
interface FakeChannel {
  ch: BroadcastChannelLike;
  name: string;
}

/** Web Locks: one holder per name, waiters served in order; abort removes a waiter. */
export class FakeLocks implements LockManagerLike {
  private held = new Set<string>();
  private queues = new Map<string, { cb: () => Promise<unknown>; done: (v: unknown) => void; fail: (e: unknown) => void; signal?: AbortSignal }[]>();

  request(name: string, options: { signal?: AbortSignal }, cb: (lock: unknown) => Promise<unknown>): Promise<unknown> {
    return new Promise((done, fail) => {
      const q = this.queues.get(name) ?? [];
      const w = { cb: () => cb({ name }), done, fail, signal: options.signal };
      q.push(w);
      this.queues.set(name, q);
      options.signal?.addEventListener('abort', () => {
        const i = q.indexOf(w);
        if (i >= 0) {
          q.splice(i, 1);
          fail(new Error('AbortError'));
        }
      });
      this.pump(name);
    });
  }

  isHeld(name: string): boolean {
    return this.held.has(name);
  }

  private pump(name: string): void {
    if (this.held.has(name)) return;
    const q = this.queues.get(name);
    const w = q?.shift();
    if (!w) return;
    this.held.add(name);
    Promise.resolve()
      .then(w.cb)
      .then(w.done, w.fail)
      .finally(() => {
        this.held.delete(name);
        this.pump(name);
      });
  }
}

export function n(seq: number, extra: Partial<Notification> = {}): Notification {
  return {
    id: 'id-' + seq,
    seq,
    prev: seq - 1,
    event_id: 'evt-' + seq,
    type: 'test',
    priority: 'normal',
    title: 'n' + seq,
    created_at: '2026-12-02T10:00:00Z',
    read: false,
    ...extra,
  };
}

/** A live broadcast of event `eventId` (its notification is n(seq, { event_id: eventId })). */
export function bc(eventId: string, extra: Partial<Broadcast> = {}): Broadcast {
  return {
    event_id: eventId,
    topic: 'all-hands',
    type: 'announcement',
    priority: 'normal',
    title: 'b ' + eventId,
    created_at: '2026-12-02T10:00:00Z',
    ...extra,
  };
}

/** A JWT-shaped token for user `sub` (unsigned: the client never verifies). */
export function token(sub: string, extra: Record<string, unknown> = {}): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub, exp: 9999999999, ...extra }) + '.sig';
}

export interface World {
  clock: FakeClock;
  server: FakeServer;
  env: Environment;
  storage: MemoryStorage;
  logs: unknown[][];
}

/** A fresh set of fakes; WebSocket and EventSource instance lists are reset. */
export function world(opts: { seed?: number; hub?: FakeBroadcastHub; locks?: FakeLocks | null } = {}): World {
  FakeWebSocket.instances = [];
  FakeEventSource.instances = [];
  const clock = new FakeClock();
  const server = new FakeServer();
  const logs: unknown[][] = [];
  const env: Environment = {
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch: server.fetch,
    BroadcastChannel: opts.hub ? opts.hub.ctor : null,
    locks: opts.locks ?? null,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: seeded(opts.seed ?? 1),
    now: () => clock.now,
    logger: { warn: (...a: unknown[]) => logs.push(a), debug: () => undefined },
  };
  return { clock, server, env, storage: new MemoryStorage(), logs };
}
