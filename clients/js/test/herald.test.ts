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
