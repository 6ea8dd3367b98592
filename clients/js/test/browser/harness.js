// Test harness of the browser tests: a real `herald dev` per test file (it
// builds nothing: the binary comes from HERALD_BIN, default the repository's
// bin/herald), headless Chromium through playwright-core, the dev API key
// read from the data directory, and polling waits.
//
// Every process started here is killed by its pid when the test ends, also
// when it fails, and once more on process exit as a safety net.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The herald binary: HERALD_BIN, else <repo>/bin/herald. */
export const heraldBin = process.env.HERALD_BIN
  ? path.resolve(process.env.HERALD_BIN)
  : path.resolve(here, '../../../../bin/herald');

/** Chromium: CHROMIUM_BIN, else Debian's /usr/bin/chromium. */
export const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Generous: the machine is small and shared. Waits poll; none of them is an
// assertion on how long something took.
export const WAIT = 45_000;

const live = new Set(); // child processes not yet reaped
function killLive() {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killLive);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killLive(); process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)); });
}

/** A free TCP port on 127.0.0.1 (the listener is closed again at once). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls fn until it returns a truthy value (returned) or timeout ms pass;
 * then throws with the message and the last value or error seen.
 */
export async function eventually(fn, { timeout = WAIT, interval = 150, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out waiting for ${message}; last: ${detail}`);
    }
    await sleep(interval);
  }
}

/**
 * One `herald dev` on a loopback port and a data directory. start() may be
 * called again after stop() (same port, same data directory) for a restart.
 */
export class HeraldDev {
  constructor({ dataDir, port, extraArgs = [] }) {
    this.dataDir = dataDir;
    this.port = port;
    this.extraArgs = extraArgs;
    this.base = `http://127.0.0.1:${port}`;
    this.log = []; // stdout and stderr lines of every run, for failure reports
    this.child = null;
  }

  static async create(opts = {}) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-browser-'));
    const port = opts.port ?? (await freePort());
    const h = new HeraldDev({ dataDir, port, extraArgs: opts.extraArgs });
    await h.start();
    return h;
  }

  async start() {
    if (this.child) throw new Error('herald dev already running');
    const args = ['dev', '--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      '--kafka-port', '0', ...this.extraArgs];
    const child = spawn(heraldBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      live.delete(child);
      this.log.push(`[herald exited code=${code} signal=${signal}]`);
      resolve({ code, signal });
    }));
    child.on('error', (err) => this.log.push(`[spawn error: ${err.message}]`));
    this.exited = exited;
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.log.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    let gone = false;
    exited.then(() => { gone = true; });
    await eventually(async () => {
      if (gone) throw new Error(`herald dev exited before it was ready:\n${this.tail()}`);
      const res = await fetch(`${this.base}/readyz`);
      await res.body?.cancel();
      return res.status === 200;
    }, { timeout: 60_000, interval: 100, message: `${this.base}/readyz` }).catch((err) => {
      throw new Error(`${err.message}\n${this.tail()}`);
    });
    const secrets = JSON.parse(await readFile(path.join(this.dataDir, 'dev-secrets.json'), 'utf8'));
    this.apiKey = secrets.api_key;
    this.jwtSecret = secrets.jwt_secret;
  }

  /** SIGTERM by pid (graceful shutdown), SIGKILL if it has not exited in 25 s. */
  async stop() {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 25_000);
      await this.exited;
      clearTimeout(t);
    }
  }

  /** stop() and remove the data directory. */
  async destroy() {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  tail(n = 60) {
    return this.log.slice(-n).join('\n');
  }

  /** POST /v1/events with the dev API key; events is one Event or a list. */
  async send(events) {
    const list = Array.isArray(events) ? events : [events];
    const body = list.length === 1 ? list[0] : { events: list };
    const res = await fetch(`${this.base}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 202) throw new Error(`POST /v1/events: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  /** The sum of the samples of a metric on /metrics (0 when absent). */
  async metric(name) {
    const res = await fetch(`${this.base}/metrics`);
    const text = await res.text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m && m[1] === name) sum += Number(m[3]);
    }
    return sum;
  }
}

let evCounter = 0;
/** An Event for user; the title says which user and which one it is. */
export function event(user, n, extra = {}) {
  evCounter += 1;
  return {
    id: `bt-${process.pid}-${Date.now()}-${evCounter}`,
    user_id: user,
    type: 'mention',
    title: `${user} #${n}`,
    body: `browser test notification ${n} for ${user}`,
    ...extra,
  };
}

/** Headless Chromium (Debian's, no sandbox: the tests run as root). */
export function launchBrowser() {
  return chromium.launch({ executablePath: chromiumBin, args: ['--no-sandbox'], headless: true });
}

/**
 * Page console errors and page errors, kept for failure messages.
 */
export function watchPage(page, label) {
  const lines = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') lines.push(`${label} console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => lines.push(`${label} pageerror: ${e.message}`));
  page.consoleLines = lines;
  return page;
}

/** Opens the demo as user in a new page of ctx. */
export async function openDemo(ctx, base, user, params = {}) {
  const page = watchPage(await ctx.newPage(), user);
  const q = new URLSearchParams({ user, ...params });
  await page.goto(`${base}/?${q}`);
  await page.waitForFunction(() => window.heraldDemo && window.heraldDemo.client, null, { timeout: WAIT });
  return page;
}

/** What the page shows: its list (newest first), badge, state, transport, seen. */
export function snapshot(page) {
  return page.evaluate(() => {
    const items = [...document.querySelectorAll('#list li')].map((li) => ({
      seq: Number(li.dataset.seq),
      id: li.dataset.id,
      read: li.dataset.read,
      title: li.querySelector('.title')?.textContent ?? '',
    }));
    const text = (sel) => document.querySelector(sel)?.textContent?.trim() ?? null;
    const c = window.heraldDemo?.client;
    return {
      items,
      badge: text('#badge'),
      state: text('#state'),
      transport: text('#transport'),
      seen: [...(window.heraldDemo?.seen ?? [])],
      leader: c ? Boolean(c.leader) : null,
    };
  });
}

/** Waits until the page's list has exactly count items (and returns the snapshot). */
export function waitForCount(page, count, what = 'list') {
  let last;
  return eventually(async () => {
    last = await snapshot(page);
    return last.items.length === count ? last : null;
  }, { message: `${what}: ${count} items` }).catch((err) => {
    throw new Error(`${err.message}\npage showed: ${JSON.stringify(last)}\n${(page.consoleLines || []).join('\n')}`);
  });
}

/** Waits until the page's #badge reads n. */
export function waitForBadge(page, n, what = 'badge') {
  return page.waitForFunction((want) => document.querySelector('#badge')?.textContent?.trim() === String(want),
    n, { timeout: WAIT, polling: 100 }).catch(async (err) => {
    throw new Error(`${what}: #badge never read ${n}: ${err.message}\npage showed: ${JSON.stringify(await snapshot(page).catch(() => null))}`);
  });
}

/** Asserts helpers: values duplicated in a list, and strictly ascending. */
export function duplicates(list) {
  const seen = new Set();
  const dup = [];
  for (const v of list) {
    if (seen.has(v)) dup.push(v);
    seen.add(v);
  }
  return dup;
}

export function ascending(list) {
  for (let i = 1; i < list.length; i++) if (!(list[i] > list[i - 1])) return false;
  return true;
}

/**
 * Runs fn; a failure gets the tail of herald's log and the pages' console
 * errors appended, so a report shows what the server said.
 */
export async function withLogs(herald, pages, fn) {
  try {
    await fn();
  } catch (err) {
    const consoles = pages().flatMap((p) => p?.consoleLines ?? []);
    err.message += `\n--- herald dev log (tail) ---\n${herald.tail(40)}` +
      (consoles.length ? `\n--- page console ---\n${consoles.slice(-40).join('\n')}` : '');
    throw err;
  }
}

/** Waits until the page's client is in state (the SDK's state, as #state shows it). */
export function waitForState(page, state, what = 'state') {
  return page.waitForFunction((want) => window.heraldDemo?.client?.state === want,
    state, { timeout: WAIT, polling: 100 }).catch(async (err) => {
    throw new Error(`${what}: client never reached state ${state}: ${err.message}\npage showed: ${JSON.stringify(await snapshot(page).catch(() => null))}`);
  });
}

/** Waits until #transport reads transport. */
export function waitForTransport(page, transport, what = 'transport') {
  return page.waitForFunction((want) => document.querySelector('#transport')?.textContent?.trim().toLowerCase() === want,
    transport, { timeout: WAIT, polling: 100 }).catch(async (err) => {
    throw new Error(`${what}: #transport never read ${transport}: ${err.message}\npage showed: ${JSON.stringify(await snapshot(page).catch(() => null))}`);
  });
}

/**
 * The invariants of every page: each notification listed once, newest
 * first; seen (what the 'notification' handler got) without a duplicate and
 * ascending. With titles, the list must show exactly those, newest first.
 */
export function checkInbox(assert, snap, { titles, label = 'page' } = {}) {
  const seqs = snap.items.map((i) => i.seq);
  assert.deepEqual(duplicates(seqs), [], `${label}: a seq listed twice: ${JSON.stringify(snap)}`);
  assert.deepEqual(duplicates(snap.items.map((i) => i.id)), [], `${label}: an id listed twice: ${JSON.stringify(snap)}`);
  assert.ok(ascending([...seqs].reverse()), `${label}: list not newest first: ${seqs}`);
  assert.deepEqual(duplicates(snap.seen), [], `${label}: heraldDemo.seen has a seq twice: ${snap.seen}`);
  assert.ok(ascending(snap.seen), `${label}: heraldDemo.seen not ascending: ${snap.seen}`);
  if (titles) assert.deepEqual(snap.items.map((i) => i.title.trim()), [...titles].reverse(), `${label}: titles`);
}
