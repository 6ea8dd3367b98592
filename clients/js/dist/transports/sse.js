// Server-Sent Events transport: GET /v1/sse?token=&after=[&broadcasts=live] with events
// notification, synced, unread, broadcast and close. The client manages reconnection
// itself (it closes the EventSource on error) so that it always resumes from its own
// cursor with a current token.
import { Close, query } from './transport.js';
/** How long an SSE stream that opened may stay silent before its first event (ms). */
export const SSE_FIRST_EVENT_TIMEOUT = 20000;
export class SSETransport {
    constructor(ctor, ctx) {
        this.ctx = ctx;
        this.name = 'sse';
        this.es = null;
        this.opened = false;
        this.done = false;
        this.firstEventTimer = null;
        const url = ctx.base + '/v1/sse?' + query(ctx.token, ctx.after, ctx.liveBroadcasts);
        let es;
        try {
            es = new ctor(url);
        }
        catch (e) {
            ctx.timers.setTimeout(() => this.end(Close.abnormal, String(e)), 0);
            return;
        }
        this.es = es;
        const h = ctx.handlers;
        es.onopen = () => {
            // The response started. A stream that then never sends an event (a buffering proxy)
            // is as good as a failed one.
            if (this.done || this.firstEventTimer !== null || this.opened)
                return;
            this.firstEventTimer = ctx.timers.setTimeout(() => {
                this.firstEventTimer = null;
                if (!this.opened)
                    this.end(Close.abnormal, 'no event from the stream');
            }, SSE_FIRST_EVENT_TIMEOUT);
        };
        es.onerror = () => this.end(Close.abnormal, 'stream error');
        this.on('notification', (d) => h.notification(d));
        this.on('broadcast', (d) => {
            if (d && typeof d === 'object')
                h.broadcast(d);
        });
        this.on('synced', (d) => {
            const s = d;
            h.synced(Number(s.seq) || 0, Number(s.unread) || 0);
        });
        this.on('unread', (d) => h.unread(Number(d.count) || 0));
        this.on('close', (d) => {
            const c = d;
            this.end(Number(c.code) || Close.abnormal, c.reason || '');
        });
    }
    close() {
        if (this.done)
            return;
        this.done = true;
        this.teardown();
    }
    on(type, fn) {
        this.es.addEventListener(type, (ev) => {
            if (this.done)
                return;
            let data;
            try {
                data = JSON.parse(ev.data);
            }
            catch {
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
    end(code, reason) {
        if (this.done)
            return;
        this.done = true;
        this.teardown();
        this.ctx.handlers.closed({ code, reason, opened: this.opened });
    }
    clearFirstEventTimer() {
        if (this.firstEventTimer !== null) {
            this.ctx.timers.clearTimeout(this.firstEventTimer);
            this.firstEventTimer = null;
        }
    }
    teardown() {
        this.clearFirstEventTimer();
        if (!this.es)
            return;
        this.es.onopen = null;
        this.es.onerror = null;
        try {
            this.es.close();
        }
        catch {
            // ignore
        }
    }
}
