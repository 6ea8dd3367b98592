// Exponential backoff with full jitter: the delay before attempt n is a uniform random
// number in [0, min(cap, base * 2^n)). Full jitter spreads the clients of a dead gateway
// evenly instead of bringing them back together.

export interface BackoffOptions {
  /** First upper bound in ms. Default 1000. */
  base?: number;
  /** Largest upper bound in ms. Default 30000. */
  cap?: number;
  /** Returns a number in [0, 1). Default Math.random. */
  random?: () => number;
}

/** The upper bound of the delay before attempt `attempt` (0-based). */
export function backoffCeiling(attempt: number, base: number, cap: number): number {
  // 2^attempt overflows nothing: past 2^30 the cap has long won.
  return Math.min(cap, base * Math.pow(2, Math.min(attempt, 30)));
}

export class Backoff {
  readonly base: number;
  readonly cap: number;
  private readonly random: () => number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.base = opts.base ?? 1000;
    this.cap = opts.cap ?? 30000;
    this.random = opts.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.n;
  }

  /** The delay in ms before the next attempt; each call moves one attempt further. */
  next(): number {
    const d = Math.floor(this.random() * backoffCeiling(this.n, this.base, this.cap));
    this.n++;
    return d;
  }

  /** Back to the first attempt, after a connection stayed up. */
  reset(): void {
    this.n = 0;
  }
}
