// The browser APIs, clock and random source the client uses, each from the options'
// env when given (tests, non-browser hosts) or else from the global of the same name.

import type { Timers } from './transports/transport.js';
import type { CursorStorage, Environment, Logger, TimerId } from './types.js';

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

export function resolveEnv(e: Environment = {}): ResolvedEnv {
  const g = globalThis as unknown as Record<string, unknown> & { navigator?: { locks?: unknown } };
  const pick = <T>(v: T | null | undefined, name: string): T | null =>
    v !== undefined ? v : ((g[name] as T | undefined) ?? null);
  const gfetch = typeof g.fetch === 'function' ? (g.fetch as (...a: unknown[]) => unknown).bind(globalThis) : null;
  const st = e.setTimeout ?? ((fn: () => void, ms: number) => setTimeout(fn, ms) as TimerId);
  const ct = e.clearTimeout ?? ((id: TimerId) => clearTimeout(id as ReturnType<typeof setTimeout>));
  return {
    WebSocket: pick(e.WebSocket, 'WebSocket'),
    EventSource: pick(e.EventSource, 'EventSource'),
    fetch: e.fetch !== undefined ? e.fetch : (gfetch as ResolvedEnv['fetch']),
    BroadcastChannel: pick(e.BroadcastChannel, 'BroadcastChannel'),
    locks: e.locks !== undefined ? e.locks : ((g.navigator?.locks as Environment['locks']) ?? null),
    timers: { setTimeout: st, clearTimeout: ct },
    random: e.random ?? Math.random,
    now: e.now ?? Date.now,
    logger: e.logger ?? console,
    window:
      e.window !== undefined
        ? e.window
        : typeof g.addEventListener === 'function'
          ? (globalThis as unknown as Environment['window'])
          : null,
  };
}

export function defaultStorage(): CursorStorage | null {
  try {
    const ls = (globalThis as { localStorage?: CursorStorage }).localStorage;
    return ls ?? null;
  } catch {
    return null; // access denied (sandboxed frame, disabled storage)
  }
}

export function defaultURL(): string | undefined {
  return (globalThis as { location?: { origin?: string } }).location?.origin;
}
