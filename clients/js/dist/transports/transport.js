// What the client needs from a transport. Each transport is one connection attempt:
// it reports what it receives and, exactly once, that it closed; the client decides
// whether, when and over what to reconnect.
/** Close codes of docs/ARCHITECTURE.md, plus the ones the client makes up itself. */
export const Close = {
    normal: 1000,
    /** The connection dropped or never came up (WebSocket 1006; network error on HTTP). */
    abnormal: 1006,
    unsupported: 1003,
    invalidPayload: 1007,
    tooManyConns: 1008,
    tooBig: 1009,
    storeFailure: 1011,
    restarting: 1012,
    tryAgainLater: 1013,
    unauthorized: 4001,
    tooSlow: 4008,
    rateLimited: 4029,
};
/** Maps an HTTP status to the close code the client acts on. */
export function codeForStatus(status) {
    if (status === 401)
        return Close.unauthorized;
    if (status === 429 || status === 503)
        return Close.tryAgainLater;
    return Close.storeFailure;
}
export function query(token, after, liveBroadcasts = false) {
    const q = new URLSearchParams();
    q.set('token', token);
    if (after !== null)
        q.set('after', String(after));
    if (liveBroadcasts)
        q.set('broadcasts', 'live');
    return q.toString();
}
