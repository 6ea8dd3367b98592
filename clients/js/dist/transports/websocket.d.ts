import type { WebSocketCtor } from '../types.js';
import { type Transport, type TransportContext } from './transport.js';
export declare function wsURL(base: string): string;
export declare class WebSocketTransport implements Transport {
    private readonly ctx;
    readonly name: "websocket";
    private ws;
    private opened;
    private done;
    constructor(ctor: WebSocketCtor, ctx: TransportContext);
    close(): void;
    private frame;
    private end;
    private detach;
}
