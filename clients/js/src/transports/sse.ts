// Server-Sent Events transport: GET /v1/sse?token=&after=[&broadcasts=live] with events
// notification, synced, unread, broadcast and close. The client manages reconnection
// itself (it closes the EventSource on error) so that it always resumes from its own
// cursor with a current token.

import type { EventSourceCtor, EventSourceLike, MessageEventLike, TimerId } from '../types.js';
import { Close, query, type Transport, type TransportContext } from './transport.js';

/** How long an SSE stream that opened may stay silent before its first event (ms). */
export const SSE_FIRST_EVENT_TIMEOUT = 20000;

export class SSETransport implements Transport {
  readonly name = 'sse' as const;
  private es: EventSourceLike | null = null;
  private opened = false;
  private done = false;
  private firstEventTimer: TimerId | null = null;

  constructor(ctor: EventSourceCtor, private readonly ctx: TransportContext) {
    const url = ctx.base + '/v1/sse?' + query(ctx.token, ctx.after, ctx.liveBroadcasts);
    let es: EventSourceLike;
    try {
      es = new ctor(url);
    } catch (e) {
      ctx.timers.setTimeout(() => this.end(Close.abnormal, String(e)), 0);
      return;
    }
    this.es = es;
    const h = ctx.handlers;
    es.onopen = () => {
      // The response started. A stream that then never sends an event (a buffering proxy)
      // is as good as a failed one.
      if (this.done || this.firstEventTimer !== null || this.opened) return;
      this.firstEventTimer = ctx.timers.setTimeout(() => {
        this.firstEventTimer = null;
        if (!this.opened) this.end(Close.abnormal, 'no event from the stream');
      }, SSE_FIRST_EVENT_TIMEOUT);
    };
    es.onerror = () => this.end(Close.abnormal, 'stream error');
    this.on('notification', (d) => h.notification(d as never));
    this.on('broadcast', (d) => {
      if (d && typeof d === 'object') h.broadcast(d as never);
    });
    this.on('synced', (d) => {
      const s = d as { seq?: number; unread?: number };
      h.synced(Number(s.seq) || 0, Number(s.unread) || 0);
    });
    this.on('unread', (d) => h.unread(Number((d as { count?: number }).count) || 0));
    this.on('close', (d) => {
      const c = d as { code?: number; reason?: string };
      this.end(Number(c.code) || Close.abnormal, c.reason || '');
    });
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.teardown();
  }

  private on(type: string, fn: (data: unknown) => void): void {
    this.es!.addEventListener(type, (ev: MessageEventLike) => {
      if (this.done) return;
      let data: unknown;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!this.opened) {
        this.opened = true;
        this.clearFirstEventTimer();
        this.ctx.handlers.open();
      }
      fn(data);
    });
  }

  private end(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.teardown();
    this.ctx.handlers.closed({ code, reason, opened: this.opened });
  }

  private clearFirstEventTimer(): void {
    if (this.firstEventTimer !== null) {
      this.ctx.timers.clearTimeout(this.firstEventTimer);
      this.firstEventTimer = null;
    }
  }

  private teardown(): void {
    this.clearFirstEventTimer();
    if (!this.es) return;
    this.es.onopen = null;
    this.es.onerror = null;
    try {
      this.es.close();
    } catch {
      // ignore
    }
  }
}
