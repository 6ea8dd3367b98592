// The demo inbox of `herald dev` in headless Chromium: live delivery in
// order, a server restart on the same data directory, a reload, and a
// second user who never sees the first one's notifications.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  HeraldDev, checkInbox, event, eventually, launchBrowser, openDemo, snapshot,
  waitForBadge, waitForCount, waitForState, withLogs,
} from './harness.js';

describe('demo inbox', { timeout: 150_000 }, () => {
  let herald;
  let browser;
  let ctxA;
  let page; // user A
  let pageB; // user B, in its own browser context
  const A = 'alice';
  const B = 'bob';
  const titlesA = [];
  const pages = () => [page, pageB];

  before(async () => {
    herald = await HeraldDev.create();
    browser = await launchBrowser();
    ctxA = await browser.newContext();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await herald?.destroy();
  });

  async function sendA(n) {
    await herald.send(event(A, n));
    titlesA.push(`${A} #${n}`);
  }

  it('open the demo as user A, send three events to A: they appear in order, badge 3', () => withLogs(herald, pages, async () => {
    page = await openDemo(ctxA, herald.base, A);
    await waitForState(page, 'synced');
    for (let n = 1; n <= 3; n++) await sendA(n);
    const snap = await waitForCount(page, 3);
    await waitForBadge(page, 3);
    checkInbox(assert, snap, { titles: titlesA, label: 'A' });
    const final = await snapshot(page);
    assert.equal(final.seen.length, 3, `seen: ${final.seen}`);
    assert.deepEqual(final.items.map((i) => i.read), ['false', 'false', 'false']);
  }));

  it('stop the server, start it again on the same data dir, send two more: the page reconnects on its own and shows five, none twice', () => withLogs(herald, pages, async () => {
    await herald.stop();
    // The page notices the server is gone before it comes back.
    await page.waitForFunction(() => !['open', 'synced'].includes(window.heraldDemo.client.state), null, { timeout: 45_000, polling: 100 });
    await herald.start();
    for (let n = 4; n <= 5; n++) await sendA(n);
    const snap = await waitForCount(page, 5);
    await waitForBadge(page, 5);
    await waitForState(page, 'synced');
    checkInbox(assert, snap, { titles: titlesA, label: 'A after restart' });
    const final = await snapshot(page);
    assert.equal(final.seen.length, 5, `seen after restart: ${final.seen}`);
  }));

  it('reload: nothing replayed twice', () => withLogs(herald, pages, async () => {
    await page.reload();
    await page.waitForFunction(() => window.heraldDemo && window.heraldDemo.client, null, { timeout: 45_000 });
    await waitForState(page, 'synced');
    let snap = await waitForCount(page, 5, 'list after reload');
    checkInbox(assert, snap, { titles: titlesA, label: 'A after reload' });
    // One more after the reload: shown once, and the older ones still once.
    await sendA(6);
    snap = await waitForCount(page, 6, 'list after reload + 1');
    await waitForBadge(page, 6);
    checkInbox(assert, snap, { titles: titlesA, label: 'A after reload + 1' });
    assert.ok(snap.seen.includes(snap.items[0].seq), `the new one reached the handler: seen ${snap.seen}, list ${JSON.stringify(snap.items)}`);
  }));

  it("user B never sees A's notifications", () => withLogs(herald, pages, async () => {
    const ctxB = await browser.newContext();
    pageB = await openDemo(ctxB, herald.base, B);
    await waitForState(pageB, 'synced');
    // Interleave: B's second event is sent after A's, so by the time B shows
    // it, A's would have reached B had it been routed there.
    await herald.send(event(B, 1));
    await sendA(7);
    await herald.send(event(B, 2));
    const snapB = await waitForCount(pageB, 2, 'B list');
    const snapA = await waitForCount(page, 7, 'A list');
    await waitForBadge(pageB, 2, 'B badge');
    checkInbox(assert, snapB, { titles: [`${B} #1`, `${B} #2`], label: 'B' });
    checkInbox(assert, snapA, { titles: titlesA, label: 'A' });
    const idsA = new Set(snapA.items.map((i) => i.id));
    assert.deepEqual(snapB.items.filter((i) => idsA.has(i.id) || i.title.includes(A)), [], 'B lists none of A');
    // And nothing of A arrives later either: B still has its two.
    await herald.send(event(B, 3));
    const later = await waitForCount(pageB, 3, 'B list + 1');
    checkInbox(assert, later, { titles: [`${B} #1`, `${B} #2`, `${B} #3`], label: 'B later' });
    assert.equal(await eventually(async () => (await snapshot(pageB)).seen.length === 3), true);
  }));
});
