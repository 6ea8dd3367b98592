// Long-poll transport: GET /v1/notifications?after=CURSOR&wait=25 in a loop, with
// Authorization: Bearer, and the unread count from GET /v1/notifications/unread_count
// after each page. The last resort where neither WebSocket nor SSE get through.

import { HTTPError } from '../http.js';
import type { TimerId } from '../types.js';
import { Close, codeForStatus, type Transport, type TransportContext } from './transport.js';

/** Seconds a poll is held by the server (it allows 0–60). */
export const LONGPOLL_WAIT = 25;
/** Page size of the polls. */
export const LONGPOLL_LIMIT = 100;
/**
 * A held poll that comes back empty sooner than this (a server that ignores wait) is
 * followed by a pause of LONGPOLL_PAUSE_MS instead of the next poll at once.
 */
export const LONGPOLL_MIN_EMPTY_MS = 1000;
export const LONGPOLL_PAUSE_MS = 5000;
/** Page size of the first walk over the inbox without a cursor. */
const WALK_LIMIT = 500;

export class LongPollTransport implements Transport {
  readonly name = 'longpoll' as const;
  private done = false;
  private opened = false;
  private pause: TimerId | null = null;
  private readonly abort: AbortController | null =
    typeof AbortController === 'function' ? new AbortController() : null;

  constructor(private readonly ctx: TransportContext) {
    this.run().catch((e: unknown) => {
      if (e instanceof HTTPError) this.end(codeForStatus(e.status), e.message);
      else this.end(Close.abnormal, e instanceof Error ? e.message : String(e));
    });
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.abort?.abort();
    if (this.pause !== null) this.ctx.timers.clearTimeout(this.pause);
  }

  private get signal(): AbortSignal | undefined {
    return this.abort?.signal;
  }

  private opening(): void {
    if (this.opened || this.done) return;
    this.opened = true;
    this.ctx.handlers.open();
  }

  private async run(): Promise<void> {
    const { api, handlers } = this.ctx;
    // After the walk the client is synced; otherwise the first page (wait=0) catches up.
    let synced = false;
    if (this.ctx.after === null) {
      await this.walk();
      synced = true;
    }
    while (!this.done) {
      await this.ctx.idle();
      if (this.done) return;
      const after = this.ctx.cursor();
      const began = this.ctx.now();
      const page = await api.list({ after, limit: LONGPOLL_LIMIT, wait: synced ? LONGPOLL_WAIT : 0 }, this.signal);
      if (this.done) return;
      if (synced && page.notifications.length === 0 && this.ctx.now() - began < LONGPOLL_MIN_EMPTY_MS) {
        await new Promise<void>((r) => (this.pause = this.ctx.timers.setTimeout(r, LONGPOLL_PAUSE_MS)));
        this.pause = null;
        if (this.done) return;
      }
      this.opening();
      for (const n of page.notifications) handlers.notification(n);
      await this.ctx.idle();
      if (this.done) return;
      const unread = await api.unreadCount(this.signal);
      if (this.done) return;
      if (!synced && page.notifications.length < LONGPOLL_LIMIT) {
        synced = true;
        handlers.synced(this.ctx.cursor(), unread);
      } else {
        handlers.unread(unread);
      }
    }
  }

  /**
   * A first connection without a cursor: like the WebSocket, hand over the unread
   * notifications and then start from the inbox head.
   */
  private async walk(): Promise<void> {
    const { api, handlers } = this.ctx;
    let after = 0;
    for (;;) {
      const page = await api.list({ after, limit: WALK_LIMIT }, this.signal);
      if (this.done) return;
      this.opening();
      for (const n of page.notifications) if (!n.read) handlers.notification(n);
      if (page.notifications.length === 0) break;
      after = page.notifications[page.notifications.length - 1].seq;
      if (page.notifications.length < WALK_LIMIT) break;
    }
    await this.ctx.idle();
    if (this.done) return;
    const unread = await api.unreadCount(this.signal);
    if (this.done) return;
    handlers.synced(after, unread);
  }

  private end(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.ctx.handlers.closed({ code, reason, opened: this.opened });
  }
}
