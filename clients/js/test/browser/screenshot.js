// Takes docs/demo.png: the demo inbox of a fresh `herald dev` with a few
// notifications (two of them read) and the pushes the fake APNs and FCM received for a
// user with no socket open. Not a test; run it by hand after changing the
// demo page:   node clients/js/test/browser/screenshot.js [out.png]
// (HERALD_BIN and CHROMIUM_BIN as for the tests).

import { createHmac } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HeraldDev, launchBrowser, openDemo, waitForBadge, waitForCount, waitForState,
} from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(here, '../../../../docs/demo.png'));

// A user JWT (HS256 with the dev secret), as `herald token` mints it.
function mint(secret, sub, ttlSeconds = 3600) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iat: now, exp: now + ttlSeconds })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

const herald = await HeraldDev.create();
const browser = await launchBrowser();
try {
  // grace has a phone and a tablet and no socket open: her notification is pushed.
  for (const device of [{ platform: 'ios', token: 'ok-grace-iphone' }, { platform: 'android', token: 'ok-grace-pixel' }]) {
    const res = await fetch(`${herald.base}/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mint(herald.jwtSecret, 'grace')}`, 'content-type': 'application/json' },
      body: JSON.stringify(device),
    });
    if (res.status !== 201) throw new Error(`POST /v1/devices: ${res.status} ${await res.text()}`);
  }

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  const page = await openDemo(ctx, herald.base, 'ada');
  await waitForState(page, 'synced');
  const ev = (n, e) => ({ id: `shot-${n}`, user_id: 'ada', type: 'mention', ...e });
  const items = [
    ev(1, { type: 'welcome', title: 'Welcome to Herald', body: 'Events sent to you show up here live, in order, exactly once.' }),
    ev(2, { type: 'comment', title: 'Linus commented on your pull request', body: '“Looks good, one nit on the retry loop.”' }),
    ev(3, { type: 'build', title: 'Build #1432 passed', body: 'main · 4 min 12 s', priority: 'low' }),
    ev(4, { type: 'mention', title: 'Grace mentioned you in #launch', body: '“@ada can you check the push payload?”', priority: 'high' }),
    ev(5, { type: 'invite', title: 'Margaret invited you to herald-dev', body: 'Join the workspace to see its channels.' }),
  ];
  for (const e of items) await herald.send(e);
  await waitForCount(page, items.length);
  // Mark the two oldest read, so both looks are in the picture.
  for (const seq of [1, 2]) await page.click(`#list li[data-seq="${seq}"] button.mark-read`);
  await waitForBadge(page, items.length - 2);

  await herald.send({ id: 'shot-push', user_id: 'grace', type: 'mention', priority: 'high',
    title: 'Ada replied in #launch', body: '“Payload looks right on iOS.”' });
  await page.waitForFunction(() => document.querySelectorAll('#pushes li, #pushes tr').length >= 2, null, { timeout: 45_000 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close().catch(() => {});
  await herald.destroy();
}
