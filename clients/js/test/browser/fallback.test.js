// The transport fallbacks behind a proxy that refuses WebSocket upgrades
// (403), and one that refuses Server-Sent Events as well: the demo page,
// loaded through the proxy, works over SSE, then over long polling, with no
// notification lost or doubled, replayed or live.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  HeraldDev, checkInbox, event, eventually, launchBrowser, openDemo, snapshot,
  waitForBadge, waitForCount, waitForState, waitForTransport, withLogs,
} from './harness.js';
import { BlockingProxy } from './proxy.js';

describe('transport fallbacks', { timeout: 150_000 }, () => {
  let herald;
  let browser;
  const proxies = [];
  const open = [];
  const pages = () => open;

  before(async () => {
    herald = await HeraldDev.create();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const p of proxies) await p.close().catch(() => {});
    await herald?.destroy();
  });

  // Two before the page opens (replayed on connect), three while it is open
  // (live), then the proxy cuts the stream or the held poll mid-way and two
  // more are sent: seven, each once, in order, still on the fallback.
  async function scenario(user, proxy, transport) {
    const titles = [];
    const send = async (n) => { await herald.send(event(user, n)); titles.push(`${user} #${n}`); };
    await send(1);
    await send(2);
    const ctx = await browser.newContext();
    const page = await openDemo(ctx, proxy.base, user);
    open.push(page);
    await waitForTransport(page, transport);
    await waitForState(page, 'synced');
    await waitForCount(page, 2, `${transport}: replayed`);
    for (let n = 3; n <= 5; n++) await send(n);
    let snap = await waitForCount(page, 5, `${transport}: live`);
    await waitForBadge(page, 5, transport);
    checkInbox(assert, snap, { titles, label: transport });

    // A cut connection: the client resumes from its cursor.
    await eventually(() => proxy.streams.size > 0, { message: `an open ${transport} request at the proxy` });
    assert.ok(proxy.dropStreams() > 0);
    for (let n = 6; n <= 7; n++) await send(n);
    snap = await waitForCount(page, 7, `${transport}: after a cut connection`);
    await waitForBadge(page, 7, `${transport} after a cut connection`);
    await waitForTransport(page, transport, 'after a cut connection');
    checkInbox(assert, snap, { titles, label: `${transport} after a cut connection` });
    const final = await snapshot(page);
    assert.equal(final.seen.length, 7, `${transport}: seen ${final.seen}`);
    return { page, final };
  }

  it('WebSocket upgrades refused by a proxy: the page works over SSE, nothing lost or doubled', () => withLogs(herald, pages, async () => {
    const proxy = new BlockingProxy(herald.base);
    proxies.push(proxy);
    await proxy.listen();
    await scenario('dave', proxy, 'sse');
    await eventually(async () => (await herald.metric('herald_sse_connections')) >= 1, { message: 'herald_sse_connections counts the stream' });
    assert.equal(await herald.metric('herald_connections'), 0, 'no WebSocket reached herald');
    assert.ok(proxy.counts.upgradesRefused >= 1, `the page tried the WebSocket first: ${JSON.stringify(proxy.counts)}`);
    assert.ok(proxy.counts.sseForwarded >= 1, `the page used /v1/sse: ${JSON.stringify(proxy.counts)}`);
  }));

  it('SSE refused too: the page works over long polling, nothing lost or doubled', () => withLogs(herald, pages, async () => {
    const proxy = new BlockingProxy(herald.base, { blockSSE: true });
    proxies.push(proxy);
    await proxy.listen();
    await scenario('erin', proxy, 'longpoll');
    assert.ok(proxy.counts.upgradesRefused >= 1, `the page tried the WebSocket first: ${JSON.stringify(proxy.counts)}`);
    assert.ok(proxy.counts.sseRefused >= 1, `the page tried SSE: ${JSON.stringify(proxy.counts)}`);
    assert.ok(proxy.counts.longPolls >= 1, `the page long-polled: ${JSON.stringify(proxy.counts)}`);
  }));

  // Not one of the list: an SSE stream is a response that never
  // ends, so the listener's timeouts (--http-read-timeout and
  // --http-write-timeout, 30 s by default) must not cut it. With 2 s ones, an
  // event sent once the stream has been open for three times that arrives
  // on the same stream.
  it('an SSE stream outlives the server\'s read and write timeouts', () => withLogs(herald, pages, async () => {
    const short = await HeraldDev.create({ extraArgs: ['--http-read-timeout', '2s', '--http-write-timeout', '2s'] });
    try {
      const proxy = new BlockingProxy(short.base);
      proxies.push(proxy);
      await proxy.listen();
      const page = await openDemo(await browser.newContext(), proxy.base, 'frank');
      open.push(page);
      await waitForTransport(page, 'sse');
      await waitForState(page, 'synced');
      const streams = proxy.counts.sseForwarded;
      await eventually(() => Date.now() - proxy.lastSSEAt > 6_000, { message: 'the stream open for 6 s' });
      await short.send(event('frank', 1));
      const snap = await waitForCount(page, 1, 'after the write timeout');
      checkInbox(assert, snap, { titles: ['frank #1'], label: 'frank' });
      assert.equal(proxy.counts.sseForwarded, streams, `the same stream delivered it (none re-opened): ${JSON.stringify(proxy.counts)}\n${short.tail(20)}`);
      await waitForTransport(page, 'sse');
    } finally {
      await short.destroy();
    }
  }));
});
