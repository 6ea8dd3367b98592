// The sequencer turns the notifications a transport (or the leader tab) hands over into
// the 'notification' events of the app: each seq once, in ascending order, with gaps
// filled from the HTTP API and seq conflicts resolved as docs/ARCHITECTURE.md says.
/** How many recent seq → id pairs are kept to tell a duplicate from a conflict. */
export const RECENT_IDS = 256;
export class Sequencer {
    constructor(cursor, hooks) {
        this.cursor = cursor;
        this.hooks = hooks;
        /**
         * Whether a prev that differs from the cursor triggers a gap fetch. Off during the
         * unread-only replay of a first connection without a cursor, where gaps are expected
         * (read notifications are not replayed), and turned on by synced().
         */
        this.checkGaps = true;
        this.recent = new Map();
        this.tail = Promise.resolve();
    }
    /**
     * Queues n behind the notifications before it; checkGaps overrides the field for it
     * (a follower gets the leader's setting along with the notification). The promise rejects when a gap could not
     * be filled (the cursor then stays before the gap, so a reconnect or retry replays it).
     */
    push(n, checkGaps) {
        return this.enqueue(() => this.handle(n, checkGaps ?? this.checkGaps));
    }
    /** The server's synced seq: adopts it (first connection) or notices a rewind. */
    synced(seq) {
        return this.enqueue(async () => {
            const cur = this.cursor.seq;
            if (seq > cur) {
                this.cursor.set(seq);
            }
            else if (seq < cur) {
                this.forgetAbove(seq);
                this.cursor.set(seq);
                this.hooks.resync({ reason: 'rewind', from: cur, seq });
            }
            this.checkGaps = true;
        });
    }
    /** Fetches and delivers everything after the cursor (a follower catching up). */
    catchUp() {
        return this.enqueue(() => this.fill(Infinity));
    }
    /** Runs fn after everything queued so far (keeps counts and states in frame order). */
    then(fn) {
        return this.enqueue(async () => fn());
    }
    /** Resolves once everything queued so far has been handled. */
    idle() {
        return this.tail;
    }
    enqueue(fn) {
        const p = this.tail.then(fn);
        this.tail = p.catch(() => undefined);
        return p;
    }
    async handle(n, checkGaps) {
        if (!n || typeof n.seq !== 'number' || !(n.seq > 0))
            return; // push-only: no inbox entry
        const cur = this.cursor.seq;
        if (n.seq <= cur) {
            const known = this.recent.get(n.seq);
            if (known === undefined || known === n.id)
                return; // a duplicate (or too old to tell)
            // The inbox reused this seq: the new one is the truth.
            this.forgetAbove(n.seq - 1);
            this.cursor.set(n.seq - 1);
            this.hooks.resync({ reason: 'conflict', from: cur, seq: n.seq, oldId: known, newId: n.id });
            this.accept(n);
            return;
        }
        if (checkGaps && cur > 0 && n.prev !== cur) {
            this.hooks.resync({ reason: 'gap', from: cur, seq: n.seq });
            await this.fill(n.seq);
        }
        if (n.seq > this.cursor.seq)
            this.accept(n);
    }
    /** Fetches pages after the cursor and delivers those below `until`. */
    async fill(until) {
        for (;;) {
            const page = await this.hooks.fetchAfter(this.cursor.seq);
            let moved = false;
            for (const m of page) {
                if (m.seq >= until)
                    return;
                if (m.seq > this.cursor.seq) {
                    this.accept(m);
                    moved = true;
                }
            }
            if (!moved || page.length === 0)
                return;
        }
    }
    accept(n) {
        this.recent.set(n.seq, n.id);
        if (this.recent.size > RECENT_IDS) {
            const oldest = this.recent.keys().next().value;
            this.recent.delete(oldest);
        }
        this.cursor.set(n.seq);
        this.hooks.deliver(n);
    }
    forgetAbove(seq) {
        for (const k of [...this.recent.keys()])
            if (k > seq)
                this.recent.delete(k);
    }
}
