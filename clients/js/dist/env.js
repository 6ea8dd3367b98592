// The browser APIs, clock and random source the client uses, each from the options'
// env when given (tests, non-browser hosts) or else from the global of the same name.
export function resolveEnv(e = {}) {
    const g = globalThis;
    const pick = (v, name) => v !== undefined ? v : (g[name] ?? null);
    const gfetch = typeof g.fetch === 'function' ? g.fetch.bind(globalThis) : null;
    const st = e.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    const ct = e.clearTimeout ?? ((id) => clearTimeout(id));
    return {
        WebSocket: pick(e.WebSocket, 'WebSocket'),
        EventSource: pick(e.EventSource, 'EventSource'),
        fetch: e.fetch !== undefined ? e.fetch : gfetch,
        BroadcastChannel: pick(e.BroadcastChannel, 'BroadcastChannel'),
        locks: e.locks !== undefined ? e.locks : (g.navigator?.locks ?? null),
        timers: { setTimeout: st, clearTimeout: ct },
        random: e.random ?? Math.random,
        now: e.now ?? Date.now,
        logger: e.logger ?? console,
        window: e.window !== undefined
            ? e.window
            : typeof g.addEventListener === 'function'
                ? globalThis
                : null,
    };
}
export function defaultStorage() {
    try {
        const ls = globalThis.localStorage;
        return ls ?? null;
    }
    catch {
        return null; // access denied (sandboxed frame, disabled storage)
    }
}
export function defaultURL() {
    return globalThis.location?.origin;
}
