// What the client needs from a transport. Each transport is one connection attempt:
// it reports what it receives and, exactly once, that it closed; the client decides
// whether, when and over what to reconnect.

import type { API } from '../http.js';
import type { Broadcast, Notification, TransportName, TimerId } from '../types.js';

/** Close codes of docs/ARCHITECTURE.md, plus the ones the client makes up itself. */
export const Close = {
  normal: 1000,
  /** The connection dropped or never came up (WebSocket 1006; network error on HTTP). */
  abnormal: 1006,
  unsupported: 1003,
  invalidPayload: 1007,
  tooManyConns: 1008,
  tooBig: 1009,
  storeFailure: 1011,
  restarting: 1012,
  tryAgainLater: 1013,
  unauthorized: 4001,
  tooSlow: 4008,
  rateLimited: 4029,
} as const;

export interface CloseInfo {
  code: number;
  reason: string;
  /** Whether the connection ever came up (WebSocket open; an SSE event; an HTTP answer). */
  opened: boolean;
}

export interface TransportHandlers {
  open(): void;
  notification(n: Notification): void;
  /** A live broadcast (only on a connection opened with broadcasts=live): outside the seq order. */
  broadcast(b: Broadcast): void;
  synced(seq: number, unread: number): void;
  unread(count: number): void;
  /** Called once when the connection ends, unless the client closed it with close(). */
  closed(info: CloseInfo): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

export interface TransportContext {
  /** http(s) base URL without a trailing slash. */
  base: string;
  token: string;
  /** The seq to resume after; null on a first connection (the server replays unread). */
  after: number | null;
  /** Whether to ask for live broadcasts (broadcasts=live; the WebSocket and SSE only). */
  liveBroadcasts: boolean;
  handlers: TransportHandlers;
  api: API;
  timers: Timers;
  now(): number;
  /** The current cursor (the long poll asks again before each request). */
  cursor(): number;
  /** Resolves when the client has handled every notification handed over so far. */
  idle(): Promise<void>;
}

export interface Transport {
  readonly name: TransportName;
  /** Ends the connection without calling handlers.closed. */
  close(): void;
}

/** Maps an HTTP status to the close code the client acts on. */
export function codeForStatus(status: number): number {
  if (status === 401) return Close.unauthorized;
  if (status === 429 || status === 503) return Close.tryAgainLater;
  return Close.storeFailure;
}

export function query(token: string, after: number | null, liveBroadcasts = false): string {
  const q = new URLSearchParams();
  q.set('token', token);
  if (after !== null) q.set('after', String(after));
  if (liveBroadcasts) q.set('broadcasts', 'live');
  return q.toString();
}
