// The HTTP API calls of the client (docs/ARCHITECTURE.md, "HTTP API").

import type { FetchLike, Notification } from './types.js';

/** An HTTP answer that was not 2xx. */
export class HTTPError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HTTPError';
  }
}

export interface Page {
  notifications: Notification[];
  next: number;
}

export interface ListParams {
  after?: number;
  limit?: number;
  unreadOnly?: boolean;
  /** Long poll: hold the request up to this many seconds (0–60). */
  wait?: number;
}

export class API {
  constructor(
    readonly base: string,
    private readonly fetchFn: FetchLike,
    private readonly token: () => string,
  ) {}

  async list(p: ListParams = {}, signal?: AbortSignal): Promise<Page> {
    const q = new URLSearchParams();
    if (p.after !== undefined) q.set('after', String(p.after));
    if (p.limit !== undefined) q.set('limit', String(p.limit));
    if (p.unreadOnly) q.set('unread_only', 'true');
    if (p.wait !== undefined) q.set('wait', String(p.wait));
    const qs = q.toString();
    const body = (await this.call('GET', '/v1/notifications' + (qs ? '?' + qs : ''), undefined, signal)) as Page;
    return { notifications: body.notifications ?? [], next: body.next ?? p.after ?? 0 };
  }

  async unreadCount(signal?: AbortSignal): Promise<number> {
    const body = (await this.call('GET', '/v1/notifications/unread_count', undefined, signal)) as { unread: number };
    return body.unread;
  }

  async markRead(seqs: number[] | 'all'): Promise<number> {
    const req = seqs === 'all' ? { all: true } : { seqs };
    const body = (await this.call('POST', '/v1/notifications/read', JSON.stringify(req))) as { unread: number };
    return body.unread;
  }

  private async call(method: string, path: string, body?: string, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = { Authorization: 'Bearer ' + this.token() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await this.fetchFn(this.base + path, { method, headers, body, signal });
    if (!res.ok) {
      let msg = method + ' ' + path + ': HTTP ' + res.status;
      try {
        const e = (await res.json()) as { error?: string };
        if (e && e.error) msg += ': ' + e.error;
      } catch {
        // not JSON
      }
      throw new HTTPError(res.status, msg);
    }
    return res.json();
  }
}
