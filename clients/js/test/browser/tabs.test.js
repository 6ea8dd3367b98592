// One connection per browser: tabs of the same user in one browser context
// elect a leader that alone holds the connection; the others get every
// notification and the unread count from it. The leader's tab closing hands
// over to another tab; marking all read in one tab reaches the other tabs and
// other browsers (contexts) of the same user.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  HeraldDev, WAIT, checkInbox, event, eventually, launchBrowser, openDemo, snapshot,
  waitForBadge, waitForCount, waitForState, withLogs,
} from './harness.js';

describe('tabs of one user', { timeout: 150_000 }, () => {
  let herald;
  let browser;
  let ctx;
  let tabs = [];
  let other; // the same user in a second browser context
  const U = 'carol';
  const titles = [];
  const pages = () => [...tabs, other];

  before(async () => {
    herald = await HeraldDev.create();
    browser = await launchBrowser();
    ctx = await browser.newContext();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await herald?.destroy();
  });

  async function send(n) {
    await herald.send(event(U, n));
    titles.push(`${U} #${n}`);
  }

  const connections = () => herald.metric('herald_connections');

  async function leaders() {
    const flags = await Promise.all(tabs.map((t) => t.evaluate(() => Boolean(window.heraldDemo.client.leader))));
    return tabs.filter((_, i) => flags[i]);
  }

  it('two tabs of A: one connection at the server, both tabs show every notification', () => withLogs(herald, pages, async () => {
    tabs = [await openDemo(ctx, herald.base, U), await openDemo(ctx, herald.base, U)];
    await eventually(async () => (await leaders()).length === 1, { message: 'exactly one leader tab' });
    await waitForState((await leaders())[0], 'synced', 'leader');
    await eventually(async () => (await connections()) === 1, { message: 'herald_connections = 1' });
    for (let n = 1; n <= 3; n++) await send(n);
    for (const [i, tab] of tabs.entries()) {
      const snap = await waitForCount(tab, 3, `tab ${i}`);
      await waitForBadge(tab, 3, `tab ${i}`);
      checkInbox(assert, snap, { titles, label: `tab ${i}` });
      assert.equal(snap.seen.length, 3, `tab ${i} seen: ${snap.seen}`);
    }
    assert.equal((await leaders()).length, 1, 'still one leader');
    assert.equal(await connections(), 1, 'herald_connections with two tabs open');
  }));

  it('close the leader tab: the other tab takes over and keeps receiving', () => withLogs(herald, pages, async () => {
    const [leader] = await leaders();
    const follower = tabs.find((t) => t !== leader);
    await leader.close();
    tabs = [follower];
    await follower.waitForFunction(() => window.heraldDemo.client.leader === true, null, { timeout: WAIT, polling: 100 });
    for (let n = 4; n <= 5; n++) await send(n);
    const snap = await waitForCount(follower, 5, 'new leader');
    await waitForBadge(follower, 5, 'new leader');
    checkInbox(assert, snap, { titles, label: 'new leader' });
    assert.equal(snap.seen.length, 5, `new leader seen: ${snap.seen}`);
    await eventually(async () => (await connections()) === 1, { message: 'herald_connections = 1 after the takeover' });
  }));

  // Not one of the issue's list, but what its "keeps the unread badge right
  // across tabs" means, and the precondition of the next test being
  // meaningful: a tab and a browser opened now show the user's unread count.
  // (It caught a follower tab opened later showing the leader's stale
  // `synced` count, before the SDK counted live unread notifications.)
  it('a tab and a second browser context opened later show every notification and the unread count', () => withLogs(herald, pages, async () => {
    const third = await openDemo(ctx, herald.base, U);
    tabs.push(third);
    other = await openDemo(await browser.newContext(), herald.base, U);
    for (const [label, p] of [['first tab', tabs[0]], ['tab opened later', third], ['second context', other]]) {
      checkInbox(assert, await waitForCount(p, 5, label), { titles, label });
    }
    assert.equal((await leaders()).length, 1, 'one leader among the tabs of the context');
    await eventually(async () => (await connections()) === 2, { message: 'herald_connections = 2 (one per context)' });
    for (const [label, p] of [['first tab', tabs[0]], ['second context', other], ['tab opened later', third]]) {
      await waitForBadge(p, 5, label);
    }
  }));

  it("mark all read in one tab: the other tab's badge and a second browser context of A go to 0", () => withLogs(herald, pages, async () => {
    assert.equal(tabs.length, 2, 'two tabs open');
    assert.ok(other, 'a second browser context open');
    for (const p of [...tabs, other]) {
      await p.waitForFunction(() => Number(document.querySelector('#badge')?.textContent) > 0, null, { timeout: WAIT, polling: 100 });
    }
    // Mark all read from the tab that does not hold the connection.
    const [leader] = await leaders();
    const clicker = tabs.find((t) => t !== leader);
    await clicker.click('#mark-all');
    await waitForBadge(clicker, 0, 'the tab that marked');
    await waitForBadge(leader, 0, 'the other tab');
    await waitForBadge(other, 0, 'the second browser context');
    for (const p of [...tabs, other]) checkInbox(assert, await snapshot(p), { titles, label: 'after mark all' });
  }));
});
