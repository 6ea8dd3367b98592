import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Herald } from '../src/herald.js';
import type { Notification, StateInfo } from '../src/types.js';
import { flush, n, token, world, FakeWebSocket } from './fakes.js';

function collect(h: Herald) {
  const got: Notification[] = [];
  const states: StateInfo[] = [];
  const unread: number[] = [];
  h.on('notification', (x) => got.push(x));
  h.on('state', (s) => states.push(s));
  h.on('unread', (c) => unread.push(c));
  return { got, states, unread };
}

test('websocket: first connect without after, cursor from synced, resume with after', async () => {
  const w = world();
  const h = new Herald({ url: 'http://h.test', token: token('ada'), storage: w.storage, env: w.env });
  const c = collect(h);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1);
  const ws = FakeWebSocket.instances[0];
  assert.ok(ws.url.startsWith('ws://h.test/v1/ws?'));
  assert.equal(ws.params.get('after'), null);
  assert.equal(ws.params.get('token'), token('ada'));
  ws.open();
  ws.notify(n(3, { prev: 2 }));
  ws.notify(n(7, { prev: 6 })); // unread-only replay: gaps are expected
  ws.synced(9, 2);
  await flush();
  assert.deepEqual(c.got.map((x) => x.seq), [3, 7]);
  assert.equal(h.cursor, 9);
  assert.equal(h.state, 'synced');
  assert.equal(h.unread, 2);
  assert.equal(w.storage.getItem('herald:cursor:ada'), '9');
  assert.equal(w.server.calls.length, 0);
  ws.serverClose(1006);
  await w.clock.advance(1000);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(FakeWebSocket.instances[1].params.get('after'), '9');
  h.close();
});

test('a stored cursor resumes with after=, dedups the overlap and resyncs a gap', async () => {
  const w = world();
  w.storage.setItem('herald:cursor:ada', '5');
  const h = new Herald({ url: 'http://h.test/', token: token('ada'), storage: w.storage, env: w.env });
  const c = collect(h);
  const resyncs: unknown[] = [];
  h.on('resync', (i) => resyncs.push(i));
  await flush();
  const ws = FakeWebSocket.instances[0];
  assert.equal(ws.params.get('after'), '5');
  assert.equal(h.cursor, 5);
  ws.open();
  ws.notify(n(5)); // overlap: already had it... but unknown id at 5 → duplicate
  ws.notify(n(6));
  ws.synced(6, 1);
  await flush();
  assert.deepEqual(c.got.map((x) => x.seq), [6]);
  // A live notification whose prev skips 7 and 8.
  w.server.add(n(7), n(8), n(9));
  ws.notify(n(9));
  ws.notify(n(10));
  await flush();
  const lists = w.server.callsTo('/v1/notifications');
  assert.equal(lists[0].url.searchParams.get('after'), '6');
  assert.equal(lists[0].headers.Authorization, 'Bearer ' + token('ada'));
  assert.deepEqual(c.got.map((x) => x.seq), [6, 7, 8, 9, 10]);
  assert.deepEqual(resyncs, [{ reason: 'gap', from: 6, seq: 9 }]);
  assert.equal(w.storage.getItem('herald:cursor:ada'), '10');
  h.close();
});

test('a seq conflict emits resync and delivers the new notification', async () => {
  const w = world();
  const h = new Herald({ url: 'http://h.test', token: token('ada'), storage: null, env: w.env });
  const c = collect(h);
  const resyncs: { reason: string }[] = [];
  h.on('resync', (i) => resyncs.push(i));
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(2, 0);
  ws.notify(n(3));
  ws.notify(n(4));
  ws.notify(n(4, { id: 'replacement' }));
  await flush();
  assert.deepEqual(c.got.map((x) => x.id), ['id-3', 'id-4', 'replacement']);
  assert.equal(resyncs.length, 1);
  assert.equal(resyncs[0].reason, 'conflict');
  assert.equal(h.cursor, 4);
  h.close();
});

test('states: connecting → open → synced → offline → connecting', async () => {
  const w = world();
  const h = new Herald({ url: 'http://h.test', token: token('ada'), storage: null, env: w.env, shared: false });
  const c = collect(h);
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(0, 4);
  await flush();
  ws.serverClose(1011, 'store failure');
  await flush();
  assert.deepEqual(
    c.states.map((s) => [s.state, s.transport, s.leader]),
    [
      ['connecting', 'websocket', true],
      ['open', 'websocket', true],
      ['synced', 'websocket', true],
      ['offline', 'websocket', true],
    ],
  );
  assert.equal(c.states[3].reason, 'store failure');
  assert.deepEqual(c.unread, [4]);
  h.close();
  assert.equal(h.state, 'closed');
  assert.equal(c.states.at(-1)!.reason, 'closed');
  assert.equal(w.clock.timers.size, 0, 'close clears every timer');
});
