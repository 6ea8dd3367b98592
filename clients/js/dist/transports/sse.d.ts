import type { EventSourceCtor } from '../types.js';
import { type Transport, type TransportContext } from './transport.js';
/** How long an SSE stream that opened may stay silent before its first event (ms). */
export declare const SSE_FIRST_EVENT_TIMEOUT = 20000;
export declare class SSETransport implements Transport {
    private readonly ctx;
    readonly name: "sse";
    private es;
    private opened;
    private done;
    private firstEventTimer;
    constructor(ctor: EventSourceCtor, ctx: TransportContext);
    close(): void;
    private on;
    private end;
    private clearFirstEventTimer;
    private teardown;
}
