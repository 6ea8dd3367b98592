// WebSocket transport: GET /v1/ws?token=&after=[&broadcasts=live] (docs/ARCHITECTURE.md, "WebSocket protocol").

import type { Broadcast, Notification, WebSocketCtor, WebSocketLike } from '../types.js';
import { Close, query, type Transport, type TransportContext } from './transport.js';

export function wsURL(base: string): string {
  return base.replace(/^http(s?):/i, (_m, s: string) => 'ws' + s + ':');
}

export class WebSocketTransport implements Transport {
  readonly name = 'websocket' as const;
  private ws: WebSocketLike | null;
  private opened = false;
  private done = false;

  constructor(ctor: WebSocketCtor, private readonly ctx: TransportContext) {
    const url = wsURL(ctx.base) + '/v1/ws?' + query(ctx.token, ctx.after, ctx.liveBroadcasts);
    let ws: WebSocketLike;
    try {
      ws = new ctor(url);
    } catch (e) {
      this.ws = null;
      // Report asynchronously, like a socket that failed to connect.
      ctx.timers.setTimeout(() => this.end(Close.abnormal, String(e)), 0);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.done) return;
      this.opened = true;
      ctx.handlers.open();
    };
    ws.onmessage = (ev) => this.frame(ev.data);
    ws.onerror = () => {
      // A close event follows; it carries the code.
    };
    ws.onclose = (ev) => this.end(ev.code || Close.abnormal, ev.reason || '');
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.detach();
    try {
      this.ws?.close(Close.normal, 'client closed');
    } catch {
      // already closing
    }
  }

  private frame(data: unknown): void {
    if (this.done) return;
    if (typeof data !== 'string') return;
    let f: {
      type?: string;
      notification?: Notification;
      broadcast?: Broadcast;
      seq?: number;
      unread?: number;
      count?: number;
    };
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    const h = this.ctx.handlers;
    switch (f.type) {
      case 'notification':
        if (f.notification) h.notification(f.notification);
        break;
      case 'broadcast':
        if (f.broadcast && typeof f.broadcast === 'object') h.broadcast(f.broadcast);
        break;
      case 'synced':
        h.synced(Number(f.seq) || 0, Number(f.unread) || 0);
        break;
      case 'unread':
        h.unread(Number(f.count) || 0);
        break;
      default:
      // Unknown frame types are ignored: a newer server may send more.
    }
  }

  private end(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.detach();
    this.ctx.handlers.closed({ code, reason, opened: this.opened });
  }

  private detach(): void {
    if (!this.ws) return;
    this.ws.onopen = null;
    this.ws.onmessage = null;
    this.ws.onerror = null;
    this.ws.onclose = null;
  }
}
