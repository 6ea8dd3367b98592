// The HTTP API calls of the client (docs/ARCHITECTURE.md, "HTTP API").
/** An HTTP answer that was not 2xx. */
export class HTTPError extends Error {
    constructor(status, message) {
        super(message);
        this.status = status;
        this.name = 'HTTPError';
    }
}
export class API {
    constructor(base, fetchFn, token) {
        this.base = base;
        this.fetchFn = fetchFn;
        this.token = token;
    }
    async list(p = {}, signal) {
        const q = new URLSearchParams();
        if (p.after !== undefined)
            q.set('after', String(p.after));
        if (p.limit !== undefined)
            q.set('limit', String(p.limit));
        if (p.unreadOnly)
            q.set('unread_only', 'true');
        if (p.wait !== undefined)
            q.set('wait', String(p.wait));
        const qs = q.toString();
        const body = (await this.call('GET', '/v1/notifications' + (qs ? '?' + qs : ''), undefined, signal));
        return { notifications: body.notifications ?? [], next: body.next ?? p.after ?? 0 };
    }
    async unreadCount(signal) {
        const body = (await this.call('GET', '/v1/notifications/unread_count', undefined, signal));
        return body.unread;
    }
    async markRead(seqs) {
        const req = seqs === 'all' ? { all: true } : { seqs };
        const body = (await this.call('POST', '/v1/notifications/read', JSON.stringify(req)));
        return body.unread;
    }
    async call(method, path, body, signal) {
        const headers = { Authorization: 'Bearer ' + this.token() };
        if (body !== undefined)
            headers['Content-Type'] = 'application/json';
        const res = await this.fetchFn(this.base + path, { method, headers, body, signal });
        if (!res.ok) {
            let msg = method + ' ' + path + ': HTTP ' + res.status;
            try {
                const e = (await res.json());
                if (e && e.error)
                    msg += ': ' + e.error;
            }
            catch {
                // not JSON
            }
            throw new HTTPError(res.status, msg);
        }
        return res.json();
    }
}
