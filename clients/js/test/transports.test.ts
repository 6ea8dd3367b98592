import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, STABLE_MS } from '../src/herald.js';
import { backoffCeiling } from '../src/backoff.js';
import type { Notification, StateInfo } from '../src/types.js';
import { flush, n, token, world, FakeEventSource, FakeWebSocket } from './fakes.js';

function start(w: ReturnType<typeof world>, extra: Record<string, unknown> = {}) {
  const h = new Herald({ url: 'http://h.test', token: token('ada'), storage: w.storage, env: w.env, ...extra });
  const got: Notification[] = [];
  const states: StateInfo[] = [];
  h.on('notification', (x) => got.push(x));
  h.on('state', (s) => states.push(s));
  return { h, got, states };
}

test('auto: a WebSocket that never opens moves down to SSE, an SSE without events to long poll', async () => {
  const w = world();
  w.storage.setItem('herald:cursor:ada', '3');
  w.server.unread = 2;
  const { h, got } = start(w);
  await flush();
  FakeWebSocket.instances[0].fail();
  await flush();
  // One authenticated probe tells a blocked upgrade from a dead server or a bad token.
  assert.equal(w.server.callsTo('/v1/notifications/unread_count').length, 1);
  assert.equal(h.unread, 2);
  await w.clock.advance(0);
  assert.equal(FakeEventSource.instances.length, 1);
  const es = FakeEventSource.instances[0];
  assert.ok(es.url.startsWith('http://h.test/v1/sse?'));
  assert.equal(es.params.get('after'), '3');
  assert.equal(es.params.get('token'), token('ada'));
  assert.equal(h.transport, 'sse');
  es.fail();
  await w.clock.advance(0);
  assert.ok(es.closed, 'the client closes the EventSource itself');
  assert.equal(h.transport, 'longpoll');
  w.server.add(n(4), n(5));
  await flush();
  const polls = w.server.callsTo('/v1/notifications');
  assert.equal(polls[0].url.searchParams.get('after'), '3');
  assert.equal(polls[0].url.searchParams.get('wait'), '0');
  assert.equal(polls[0].headers.Authorization, 'Bearer ' + token('ada'));
  // Caught up at once (wait=0), then a held poll that the new notifications wake.
  assert.equal(polls[1].url.searchParams.get('after'), '3');
  assert.equal(polls[1].url.searchParams.get('wait'), '25');
  assert.equal(polls[2].url.searchParams.get('after'), '5');
  assert.deepEqual(got.map((x) => x.seq), [4, 5]);
  assert.equal(h.state, 'synced');
  // The next notification wakes the held poll.
  w.server.add(n(6));
  await flush();
  assert.deepEqual(got.map((x) => x.seq), [4, 5, 6]);
  assert.equal(w.server.callsTo('/v1/notifications').at(-1)!.url.searchParams.get('after'), '6');
  h.close();
  w.server.release();
});

test('a WebSocket failing while the server is unreachable does not move down', async () => {
  const w = world();
  const { h } = start(w);
  await flush();
  w.server.down = true;
  FakeWebSocket.instances[0].fail();
  await flush();
  assert.equal(h.state, 'offline');
  await w.clock.advance(1000);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(FakeEventSource.instances.length, 0);
  h.close();
});

test('a forced transport never moves', async () => {
  for (const forced of ['websocket', 'sse'] as const) {
    const w = world();
    const { h } = start(w, { transport: forced });
    await flush();
    if (forced === 'websocket') FakeWebSocket.instances[0].fail();
    else FakeEventSource.instances[0].fail();
    await w.clock.advance(1000);
    assert.equal(h.transport, forced);
    assert.equal(FakeWebSocket.instances.length, forced === 'websocket' ? 2 : 0);
    assert.equal(FakeEventSource.instances.length, forced === 'sse' ? 2 : 0);
    h.close();
  }
  const w = world();
  const { h } = start(w, { transport: 'longpoll' });
  await flush();
  assert.equal(h.transport, 'longpoll');
  assert.equal(FakeWebSocket.instances.length, 0);
  // No cursor: the first walk reads the inbox (wait=0) and then holds a poll from its head.
  assert.equal(w.server.callsTo('/v1/notifications')[0].url.searchParams.get('wait'), null);
  h.close();
  w.server.release();
});

test('long poll without a cursor hands over the unread ones and continues from the head', async () => {
  const w = world();
  w.server.add(n(1, { read: true }), n(2), n(3, { read: true }));
  w.server.unread = 1;
  const { h, got } = start(w, { transport: 'longpoll' });
  await flush();
  assert.deepEqual(got.map((x) => x.seq), [2]);
  assert.equal(h.cursor, 3);
  assert.equal(h.unread, 1);
  assert.equal(h.state, 'synced');
  const last = w.server.callsTo('/v1/notifications').at(-1)!;
  assert.equal(last.url.searchParams.get('after'), '3');
  assert.equal(last.url.searchParams.get('wait'), '25');
  // markRead goes over HTTP and emits the count it returns.
  const unread: number[] = [];
  h.on('unread', (c) => unread.push(c));
  assert.equal(await h.markRead('all'), 0);
  assert.deepEqual(w.server.callsTo('/v1/notifications/read')[0].body, { all: true });
  assert.deepEqual(unread, [0]);
  h.close();
  w.server.release();
});

test('SSE frames: notification, synced, unread, and a server close event', async () => {
  const w = world();
  const { h, got } = start(w, { transport: 'sse' });
  await flush();
  const es = FakeEventSource.instances[0];
  assert.equal(es.params.get('after'), null);
  es.open();
  es.event('notification', n(8, { prev: 3 }), '8');
  es.event('synced', { seq: 8, unread: 1 });
  es.event('unread', { count: 0 });
  await flush();
  assert.deepEqual(got.map((x) => x.seq), [8]);
  assert.equal(h.cursor, 8);
  assert.equal(h.unread, 0);
  assert.equal(h.state, 'synced');
  es.event('close', { code: 1012, reason: 'restarting' });
  await flush();
  assert.ok(es.closed);
  assert.equal(h.state, 'offline');
  await w.clock.advance(1000);
  assert.equal(FakeEventSource.instances[1].params.get('after'), '8');
  h.close();
});

test('an SSE stream that opens but sends nothing counts as failed', async () => {
  const w = world();
  const { h } = start(w, { transport: 'auto' });
  await flush();
  FakeWebSocket.instances[0].fail();
  await w.clock.advance(0);
  FakeEventSource.instances[0].open();
  await w.clock.advance(20000);
  assert.equal(h.transport, 'longpoll');
  h.close();
  w.server.release();
});

test('auto tries to move back up to the WebSocket after about a minute', async () => {
  const w = world();
  const { h } = start(w);
  await flush();
  FakeWebSocket.instances[0].fail();
  await w.clock.advance(0);
  const es = FakeEventSource.instances[0];
  es.open();
  es.event('synced', { seq: 0, unread: 0 });
  await flush();
  assert.equal(h.transport, 'sse');
  const up = w.clock.pending().filter((ms) => ms >= 50000 && ms <= 70000);
  assert.equal(up.length, 1, 'one move-up timer in 60 s ± 10 s: ' + w.clock.pending());
  await w.clock.advance(70000);
  assert.ok(es.closed);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(h.transport, 'websocket');
  // Still blocked: down again.
  FakeWebSocket.instances[1].fail();
  await w.clock.advance(0);
  assert.equal(FakeEventSource.instances.length, 2);
  // Upgrades work now: the next attempt stays up.
  FakeEventSource.instances[1].event('synced', { seq: 0, unread: 0 });
  await w.clock.advance(70000);
  FakeWebSocket.instances[2].open();
  await flush();
  assert.equal(h.transport, 'websocket');
  assert.equal(h.state, 'open');
  h.close();
});

test('4001 asks getToken for a fresh token; three in a row give up', async () => {
  const w = world();
  let calls = 0;
  const getToken = () => token('ada', { n: ++calls });
  const { h, states } = start(w, { token: undefined, getToken });
  await flush();
  assert.equal(calls, 1);
  FakeWebSocket.instances[0].open();
  FakeWebSocket.instances[0].serverClose(4001, 'token expired');
  await w.clock.advance(1000);
  assert.equal(calls, 2);
  assert.equal(FakeWebSocket.instances[1].params.get('token'), token('ada', { n: 2 }));
  FakeWebSocket.instances[1].open();
  FakeWebSocket.instances[1].serverClose(4001);
  await w.clock.advance(2000);
  assert.equal(calls, 3);
  FakeWebSocket.instances[2].open();
  FakeWebSocket.instances[2].serverClose(4001);
  await w.clock.advance(60000);
  assert.equal(FakeWebSocket.instances.length, 3);
  assert.deepEqual(states.at(-1), { state: 'closed', transport: null, leader: true, reason: 'unauthorized' });
  assert.equal(h.state, 'closed');
});

test('a synced connection resets the count of 4001s', async () => {
  const w = world();
  let calls = 0;
  const { h } = start(w, { token: undefined, getToken: () => token('ada', { n: ++calls }) });
  await flush();
  for (let i = 0; i < 5; i++) {
    const ws = FakeWebSocket.instances[i];
    ws.open();
    ws.synced(0, 0);
    await flush();
    ws.serverClose(4001);
    await w.clock.advance(30000);
  }
  assert.equal(FakeWebSocket.instances.length, 6);
  assert.notEqual(h.state, 'closed');
  h.close();
});

test('HTTP 401 on the probe (the upgrade failed) counts as 4001; a static token gives up at once', async () => {
  const w = world();
  const { h } = start(w);
  await flush();
  w.server.status = 401;
  FakeWebSocket.instances[0].fail();
  await flush();
  assert.equal(h.state, 'closed');
  assert.equal(FakeEventSource.instances.length, 0);
});

test('HTTP 401 on a long poll refreshes the token', async () => {
  const w = world();
  let calls = 0;
  w.server.status = 401;
  const { h } = start(w, { token: undefined, getToken: () => token('ada', { n: ++calls }), transport: 'longpoll' });
  await flush();
  assert.equal(calls, 2);
  w.server.status = null;
  await w.clock.advance(1000);
  assert.equal(w.server.calls.at(-1)!.headers.Authorization, 'Bearer ' + token('ada', { n: 2 }));
  assert.equal(h.state, 'synced');
  h.close();
  w.server.release();
});

test('1012 reconnects promptly with a little jitter; 1013 and 1011 back off', async () => {
  const w = world();
  const { h } = start(w);
  await flush();
  // Several 1011s: the delays grow within the full-jitter bounds.
  for (let i = 0; i < 4; i++) {
    const ws = FakeWebSocket.instances.at(-1)!;
    ws.open();
    ws.serverClose(1011);
    await flush();
    const [d] = w.clock.pending();
    assert.ok(d < backoffCeiling(i, 1000, 30000), `attempt ${i}: ${d}`);
    await w.clock.advance(d);
  }
  const before = FakeWebSocket.instances.length;
  FakeWebSocket.instances.at(-1)!.open();
  FakeWebSocket.instances.at(-1)!.serverClose(1012, 'restarting');
  await flush();
  const [d] = w.clock.pending();
  assert.ok(d < 1000, 'prompt: ' + d);
  await w.clock.advance(d);
  assert.equal(FakeWebSocket.instances.length, before + 1);
  h.close();
});

test('the backoff resets once a connection stayed up for STABLE_MS', async () => {
  const w = world({ seed: 7 });
  const { h } = start(w, { transport: 'websocket', env: { ...w.env, random: () => 0.999 } });
  await flush();
  for (let i = 0; i < 5; i++) {
    FakeWebSocket.instances.at(-1)!.open();
    FakeWebSocket.instances.at(-1)!.serverClose(1013);
    await flush();
    await w.clock.advance(w.clock.pending()[0]);
  }
  assert.equal(w.clock.now, 999 + 1998 + 3996 + 7992 + 15984);
  // A connection that stays up resets that.
  const ws = FakeWebSocket.instances.at(-1)!;
  ws.open();
  await w.clock.advance(STABLE_MS);
  ws.serverClose(1006);
  await flush();
  assert.ok(w.clock.pending()[0] < 1000, 'reset: ' + w.clock.pending());
  h.close();
});

test('1003, 1007 and 1009 are logged as client bugs and retried with backoff', async () => {
  const w = world();
  const { h } = start(w);
  await flush();
  for (const code of [1003, 1007, 1009]) {
    FakeWebSocket.instances.at(-1)!.open();
    FakeWebSocket.instances.at(-1)!.serverClose(code, 'bad');
    await flush();
    await w.clock.advance(w.clock.pending()[0]);
  }
  assert.equal(w.logs.filter((l) => l.join(' ').includes('client bug')).length, 3);
  assert.equal(FakeWebSocket.instances.length, 4);
  h.close();
});

test("the browser's online event skips the wait of a pending reconnect", async () => {
  const w = world();
  const fns = new Map<string, () => void>();
  const win = {
    addEventListener: (t: string, fn: () => void) => fns.set(t, fn),
    removeEventListener: (t: string) => fns.delete(t),
  };
  const { h } = start(w, { transport: 'websocket', env: { ...w.env, window: win, random: () => 0.999 } });
  await flush();
  FakeWebSocket.instances[0].open();
  FakeWebSocket.instances[0].serverClose(1006);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1);
  fns.get('online')!();
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(w.clock.timers.size, 0);
  h.close();
  assert.equal(fns.size, 0);
});

test('getToken failing at start is retried with backoff', async () => {
  const w = world();
  let calls = 0;
  const { h } = start(w, {
    token: undefined,
    getToken: async () => {
      if (++calls < 3) throw new Error('token endpoint down');
      return token('ada');
    },
  });
  await flush();
  assert.equal(h.state, 'offline');
  await w.clock.advance(5000);
  assert.equal(calls, 3);
  assert.equal(h.userId, 'ada');
  assert.equal(FakeWebSocket.instances.length, 1);
  h.close();
});

test('options are validated, naming the option', () => {
  const w = world();
  assert.throws(() => new Herald({ url: 'http://h.test', env: w.env }), /options.token or options.getToken/);
  assert.throws(() => new Herald({ url: 'ftp://x', token: 't', env: w.env }), /options.url/);
  assert.throws(
    () => new Herald({ url: 'http://h.test', token: 't', transport: 'pigeon' as never, env: w.env }),
    /options.transport/,
  );
});

test('a token without a sub closes the client with the reason', async () => {
  const w = world();
  const h = new Herald({ url: 'http://h.test', token: 'not-a-jwt', env: w.env });
  await assert.rejects(h.list(), /not a JWT/);
  assert.equal(h.state, 'closed');
});

test('unread: synced gives the count, each new unread notification adds one, reads set it', async () => {
  const w = world();
  const { h } = start(w, { storage: null });
  const counts: number[] = [];
  h.on('unread', (c) => counts.push(c));
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.notify(n(1, { prev: 0 })); // part of the replay: counted by synced
  ws.synced(1, 1);
  ws.notify(n(2));
  ws.notify(n(3, { read: true }));
  ws.notify(n(3)); // duplicate: not counted
  ws.notify(n(4));
  await flush();
  assert.deepEqual(counts, [1, 2, 3]);
  ws.frame({ type: 'unread', count: 1 });
  await flush();
  assert.equal(h.unread, 1);
  h.close();
});

test('long poll: a server that answers held polls at once is not hammered', async () => {
  const w = world();
  const { h } = start(w, { transport: 'longpoll', storage: null });
  await flush();
  const polls = () => w.server.callsTo('/v1/notifications').length;
  const before = polls();
  w.server.release(); // the held poll comes back empty at once
  await flush();
  assert.equal(polls(), before, 'pauses instead of polling again');
  await w.clock.advance(5000);
  assert.equal(polls(), before + 1);
  h.close();
  assert.equal(w.clock.timers.size, 0);
});

test('long poll: the count is the one read after each page, never counted up', async () => {
  const w = world();
  const { h } = start(w, { transport: 'longpoll', storage: null });
  const counts: number[] = [];
  h.on('unread', (c) => counts.push(c));
  await flush();
  // The count read after a page may already include notifications of the next page.
  w.server.unread = 2;
  w.server.add(n(1, { prev: 0 }), n(2));
  await flush();
  assert.equal(h.unread, 2);
  assert.deepEqual(counts, [0, 2]);
  h.close();
  w.server.release();
});

test('a forced transport the environment lacks closes with the reason; auto skips it', async () => {
  const w = world();
  const forced = new Herald({ url: 'http://h.test', token: token('ada'), transport: 'sse', env: { ...w.env, EventSource: null } });
  await flush();
  assert.equal(forced.state, 'closed');
  const auto = new Herald({ url: 'http://h.test', token: token('ada'), env: { ...w.env, WebSocket: null, EventSource: null } });
  await flush();
  assert.equal(auto.transport, 'longpoll');
  auto.close();
  w.server.release();
});
