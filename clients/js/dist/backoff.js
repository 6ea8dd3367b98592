// Exponential backoff with full jitter: the delay before attempt n is a uniform random
// number in [0, min(cap, base * 2^n)). Full jitter spreads the clients of a dead gateway
// evenly instead of bringing them back together.
/** The upper bound of the delay before attempt `attempt` (0-based). */
export function backoffCeiling(attempt, base, cap) {
    // 2^attempt overflows nothing: past 2^30 the cap has long won.
    return Math.min(cap, base * Math.pow(2, Math.min(attempt, 30)));
}
export class Backoff {
    constructor(opts = {}) {
        this.n = 0;
        this.base = opts.base ?? 1000;
        this.cap = opts.cap ?? 30000;
        this.random = opts.random ?? Math.random;
    }
    /** How many delays were handed out since the last reset. */
    get attempt() {
        return this.n;
    }
    /** The delay in ms before the next attempt; each call moves one attempt further. */
    next() {
        const d = Math.floor(this.random() * backoffCeiling(this.n, this.base, this.cap));
        this.n++;
        return d;
    }
    /** Back to the first attempt, after a connection stayed up. */
    reset() {
        this.n = 0;
    }
}
