export interface BackoffOptions {
    /** First upper bound in ms. Default 1000. */
    base?: number;
    /** Largest upper bound in ms. Default 30000. */
    cap?: number;
    /** Returns a number in [0, 1). Default Math.random. */
    random?: () => number;
}
/** The upper bound of the delay before attempt `attempt` (0-based). */
export declare function backoffCeiling(attempt: number, base: number, cap: number): number;
export declare class Backoff {
    readonly base: number;
    readonly cap: number;
    private readonly random;
    private n;
    constructor(opts?: BackoffOptions);
    /** How many delays were handed out since the last reset. */
    get attempt(): number;
    /** The delay in ms before the next attempt; each call moves one attempt further. */
    next(): number;
    /** Back to the first attempt, after a connection stayed up. */
    reset(): void;
}
