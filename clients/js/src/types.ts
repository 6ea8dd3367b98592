// Shared types of the Herald client. Everything here is part of the public API.

/** A notification as Herald sends it (docs/ARCHITECTURE.md, "Notification"). */
export interface Notification {
  id: string;
  seq: number;
  prev: number;
  event_id: string;
  type: string;
  priority: string;
  title?: string;
  body?: string;
  data?: unknown;
  created_at: string;
  read: boolean;
  /**
   * Set by the client on the 'notification' event, never sent by the server: the event_id
   * (the same as `event_id`) of the live broadcast this tab emitted as a 'broadcast' event
   * and that this notification supersedes. Replace that item with this one rather than
   * show a second one. Absent otherwise (always without `liveBroadcasts`).
   */
  supersedes?: string;
}

/**
 * A live broadcast (docs/ARCHITECTURE.md, "Live broadcasts"), with `liveBroadcasts` only: a
 * broadcast to a large audience sent ahead of its inbox copy. It has no id or seq: it does
 * not move the cursor, is not counted in unread and cannot be marked read. The same
 * broadcast follows as a notification with the same event_id, which has `supersedes` set.
 */
export interface Broadcast {
  event_id: string;
  /** The audience's topic. */
  topic: string;
  type: string;
  priority: string;
  title?: string;
  body?: string;
  data?: unknown;
  created_at: string;
}

export type TransportName = 'websocket' | 'sse' | 'longpoll';

export type ConnectionState = 'connecting' | 'open' | 'synced' | 'offline' | 'closed';

/** The payload of the 'state' event, also `herald.state`-related properties. */
export interface StateInfo {
  state: ConnectionState;
  /** The transport in use (by this tab, or by the leader tab for a follower); null while none. */
  transport: TransportName | null;
  /** True when this tab holds the connection (always true with shared: false). */
  leader: boolean;
  /** Why: the close reason while offline, 'unauthorized' or 'closed' once closed. */
  reason?: string;
}

/** The payload of the 'resync' event. */
export interface ResyncInfo {
  /**
   * 'gap': a notification's prev did not match the cursor; the missing ones were fetched
   * and delivered before it. 'conflict': the server reused a seq with another id; the app
   * should replace what it holds at `seq` and drop what it holds above it, the new one is
   * delivered next. 'rewind': the server's inbox is behind the cursor (synced.seq < cursor);
   * the cursor moved back to `seq`.
   */
  reason: 'gap' | 'conflict' | 'rewind';
  /** gap: the cursor before the fetch; conflict/rewind: the cursor before the change. */
  from: number;
  /** gap: the seq that revealed the gap; conflict: the reused seq; rewind: the new cursor. */
  seq: number;
  /** conflict only: the id previously held at seq and the new one. */
  oldId?: string;
  newId?: string;
}

export interface HeraldEvents {
  notification: Notification;
  broadcast: Broadcast;
  unread: number;
  state: StateInfo;
  resync: ResyncInfo;
}

/** The subset of the Web Storage API the client uses for the cursor. */
export interface CursorStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Minimal shapes of the browser APIs the client uses, so tests can pass fakes. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface MessageEventLike {
  data: string;
  lastEventId?: string;
}
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, fn: (ev: MessageEventLike) => void): void;
  close(): void;
}
export type EventSourceCtor = new (url: string) => EventSourceLike;

export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  json(): Promise<unknown>;
}
export type FetchLike = (
  url: string,
  init?: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<ResponseLike>;

export interface BroadcastChannelLike {
  onmessage: ((ev: { data: unknown }) => void) | null;
  postMessage(msg: unknown): void;
  close(): void;
}
export type BroadcastChannelCtor = new (name: string) => BroadcastChannelLike;

export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

export type TimerId = unknown;

export interface Logger {
  warn(...args: unknown[]): void;
  debug?(...args: unknown[]): void;
}

/**
 * The environment the client runs in. Every field defaults to the browser global of the
 * same name; tests (or non-browser hosts) inject fakes here.
 */
export interface Environment {
  WebSocket?: WebSocketCtor | null;
  EventSource?: EventSourceCtor | null;
  fetch?: FetchLike | null;
  BroadcastChannel?: BroadcastChannelCtor | null;
  /** navigator.locks; null disables Web Locks (BroadcastChannel election is used then). */
  locks?: LockManagerLike | null;
  setTimeout?: (fn: () => void, ms: number) => TimerId;
  clearTimeout?: (id: TimerId) => void;
  /** Returns a number in [0, 1). Default Math.random. */
  random?: () => number;
  /** Milliseconds, default Date.now. */
  now?: () => number;
  /** Default console. */
  logger?: Logger;
  /**
   * Where the browser's 'online' event is heard (default globalThis, i.e. window): when the
   * network comes back, a waiting reconnect happens at once. null disables it.
   */
  window?: { addEventListener(type: string, fn: () => void): void; removeEventListener(type: string, fn: () => void): void } | null;
}

export interface HeraldOptions {
  /** Base URL of the Herald gateway/API (http or https; the WebSocket URL is derived). Default: location.origin. */
  url?: string;
  /** A user JWT. Either token or getToken is required. */
  token?: string;
  /** Returns a fresh user JWT; called at start when no token is given, and again after 4001 / HTTP 401. */
  getToken?: () => string | Promise<string>;
  /** 'auto' (default): WebSocket, falling back to SSE, then long poll. Any other value forces that transport. */
  transport?: 'auto' | TransportName;
  /** One connection per browser (default true where Web Locks or BroadcastChannel exist). */
  shared?: boolean;
  /**
   * Ask for live broadcasts (`broadcasts=live` on the WebSocket and SSE; the long poll has
   * none): 'broadcast' events ahead of the notifications that follow them. Default false.
   */
  liveBroadcasts?: boolean;
  /** Where the cursor is kept (default localStorage when available); null keeps it in memory only. */
  storage?: CursorStorage | null;
  /** Injected browser APIs, clock and random source (for tests and non-browser hosts). */
  env?: Environment;
}
