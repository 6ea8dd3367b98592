// A small HTTP proxy in front of `herald dev` that behaves like the
// corporate proxies the SDK's fallbacks exist for: it forwards plain HTTP
// (and streams responses as they come, so Server-Sent Events pass), answers
// every `Upgrade: websocket` request with 403, and in mode 'no-sse' answers
// GET /v1/sse with 403 too.
//
// The Host header is forwarded as the browser sent it, so herald's
// same-host origin check sees the proxy's origin on both sides.

import http from 'node:http';

export class BlockingProxy {
  /**
   * @param {string} target base URL of herald dev, e.g. http://127.0.0.1:1234
   * @param {{blockSSE?: boolean}} opts
   */
  constructor(target, { blockSSE = false } = {}) {
    this.target = new URL(target);
    this.blockSSE = blockSSE;
    this.counts = { upgradesRefused: 0, sseRefused: 0, sseForwarded: 0, longPolls: 0, forwarded: 0, dropped: 0 };
    this.streams = new Set(); // open SSE responses and held long polls
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.server = http.createServer((req, res) => this.#handle(req, res));
    this.server.on('upgrade', (req, socket) => {
      this.counts.upgradesRefused += 1;
      const body = '{"error":"websocket upgrades are not allowed by this proxy"}';
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      socket.on('error', () => {});
    });
  }

  /** Listens on a free loopback port; resolves to the proxy's base URL. */
  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.base = `http://127.0.0.1:${this.server.address().port}`;
        resolve(this.base);
      });
    });
  }

  #handle(req, res) {
    const url = new URL(req.url, 'http://proxy');
    if (url.pathname === '/v1/sse') {
      if (this.blockSSE) {
        this.counts.sseRefused += 1;
        req.resume();
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end('{"error":"event streams are not allowed by this proxy"}');
        return;
      }
      this.counts.sseForwarded += 1;
      this.lastSSEAt = Date.now();
    }
    const longPoll = url.pathname === '/v1/notifications' && url.searchParams.has('wait');
    if (longPoll) this.counts.longPolls += 1;
    this.counts.forwarded += 1;
    if (longPoll || url.pathname === '/v1/sse') {
      this.streams.add(res);
      res.on('close', () => this.streams.delete(res));
    }
    const up = http.request({
      host: this.target.hostname,
      port: this.target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent: this.agent,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.headers);
      res.flushHeaders();
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `proxy: ${err.message}` }));
      } else {
        res.destroy();
      }
    });
    // A client that goes away (an EventSource closed, a page reloaded) ends
    // the upstream request too, so no stream outlives its browser side.
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
    req.pipe(up);
  }

  /**
   * Cuts every open SSE stream and held long poll mid-way (the TCP
   * connection closed, as a proxy's idle timeout would), so the client must
   * reconnect and resume. Returns how many were cut.
   */
  dropStreams() {
    const n = this.streams.size;
    for (const res of this.streams) res.socket?.destroy();
    this.streams.clear();
    this.counts.dropped += n;
    return n;
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }
}
