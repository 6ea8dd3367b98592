import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Herald } from '../src/herald.js';
import { CLAIM_MS, LEADER_TIMEOUT_MS } from '../src/leader.js';
import type { Environment, Notification, StateInfo } from '../src/types.js';
import { FakeBroadcastHub, FakeEventSource, FakeLocks, FakeWebSocket, MemoryStorage, flush, n, token, world } from './fakes.js';

function tab(w: ReturnType<typeof world>, storage: MemoryStorage | null, env: Partial<Environment> = {}) {
  const h = new Herald({ url: 'http://h.test', token: token('ada'), storage, env: { ...w.env, ...env } });
  const got: number[] = [];
  const states: StateInfo[] = [];
  const unread: number[] = [];
  h.on('notification', (x: Notification) => got.push(x.seq));
  h.on('state', (s) => states.push(s));
  h.on('unread', (c) => unread.push(c));
  return { h, got, states, unread };
}

test('web locks: one leader connects, followers get relayed frames, and take over when it closes', async () => {
  const hub = new FakeBroadcastHub();
  const locks = new FakeLocks();
  const w = world({ hub, locks });
  const a = tab(w, w.storage);
  await flush();
  const b = tab(w, w.storage);
  const c = tab(w, w.storage);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1, 'one connection for three tabs');
  assert.equal(a.h.leader, true);
  assert.equal(b.h.leader, false);
  assert.equal(c.h.leader, false);
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.notify(n(1, { prev: 0 }));
  ws.notify(n(2));
  ws.synced(2, 2);
  await flush();
  for (const t of [a, b, c]) {
    assert.deepEqual(t.got, [1, 2]);
    assert.deepEqual(t.unread, [2]);
    assert.equal(t.h.cursor, 2);
    assert.equal(t.h.state, 'synced');
    assert.equal(t.h.transport, 'websocket');
  }
  assert.equal(b.states.at(-1)!.leader, false);
  assert.equal(a.states.at(-1)!.leader, true);
  ws.frame({ type: 'unread', count: 1 });
  await flush();
  assert.deepEqual(b.unread, [2, 1]);

  // A follower marks read over HTTP itself.
  w.server.unread = 1;
  assert.equal(await b.h.markRead([2]), 0);
  assert.equal(w.server.callsTo('/v1/notifications/read').length, 1);
  assert.equal(ws.sent.length, 0);
  await flush();
  assert.equal(a.h.unread, 0, 'the follower told the leader');
  assert.equal(c.h.unread, 0, 'and the leader the other followers');

  // The leader tab goes away: the lock passes to the next tab, which resumes from the shared cursor.
  a.h.close();
  await flush();
  assert.ok(ws.closedByClient);
  assert.equal(b.h.leader, true);
  assert.equal(c.h.leader, false);
  assert.equal(FakeWebSocket.instances.length, 2);
  const ws2 = FakeWebSocket.instances[1];
  assert.equal(ws2.params.get('after'), '2');
  assert.notEqual(b.h.state, 'closed');
  assert.notEqual(c.h.state, 'closed', "followers never see the old leader's close");
  ws2.open();
  ws2.notify(n(3));
  await flush();
  assert.deepEqual(b.got, [1, 2, 3]);
  assert.deepEqual(c.got, [1, 2, 3]);
  assert.deepEqual(a.got, [1, 2]);
  b.h.close();
  c.h.close();
  await flush();
  assert.equal(locks.isHeld('herald:ada'), false);
});

test('users do not share: another user gets its own lock, channel and connection', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: new FakeLocks() });
  const a = tab(w, w.storage);
  const bob = new Herald({ url: 'http://h.test', token: token('bob'), storage: w.storage, env: w.env });
  const bobGot: number[] = [];
  bob.on('notification', (x) => bobGot.push(x.seq));
  await flush();
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(bob.leader, true);
  const adaWS = FakeWebSocket.instances.find((x) => x.params.get('token') === token('ada'))!;
  adaWS.open();
  adaWS.notify(n(1, { prev: 0 }));
  await flush();
  assert.deepEqual(a.got, [1]);
  assert.deepEqual(bobGot, []);
  a.h.close();
  bob.close();
});

test('a late follower catches up over HTTP from its own cursor', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: new FakeLocks() });
  const a = tab(w, w.storage);
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(0, 0);
  for (let i = 1; i <= 5; i++) ws.notify(n(i));
  w.server.add(n(1), n(2), n(3), n(4), n(5));
  await flush();
  // This tab's storage says it last saw 2 (e.g. another profile's storage, or a stale write).
  const own = new MemoryStorage();
  own.setItem('herald:cursor:ada', '2');
  const b = tab(w, own);
  await flush();
  assert.deepEqual(b.got, [3, 4, 5]);
  assert.equal(w.server.callsTo('/v1/notifications')[0].url.searchParams.get('after'), '2');
  // A tab without any cursor starts from the leader's.
  const c = tab(w, null);
  await flush();
  assert.equal(c.h.cursor, 5);
  assert.deepEqual(c.got, []);
  // A relayed notification after a missed one makes the follower fill the gap itself.
  ws.notify(n(6));
  await flush();
  assert.deepEqual(b.got, [3, 4, 5, 6]);
  assert.deepEqual(c.got, [6]);
  a.h.close();
  b.h.close();
  c.h.close();
});

test('shared: false connects every tab', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: new FakeLocks() });
  const a = new Herald({ url: 'http://h.test', token: token('ada'), shared: false, storage: null, env: w.env });
  const b = new Herald({ url: 'http://h.test', token: token('ada'), shared: false, storage: null, env: w.env });
  await flush();
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.ok(a.leader && b.leader);
  a.close();
  b.close();
});

test('BroadcastChannel election without Web Locks: one leader, and a new one after it leaves', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: null });
  const a = tab(w, w.storage);
  await w.clock.advance(CLAIM_MS);
  const b = tab(w, w.storage);
  const c = tab(w, w.storage);
  await w.clock.advance(CLAIM_MS * 3);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.deepEqual([a.h.leader, b.h.leader, c.h.leader], [true, false, false]);
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(0, 0);
  ws.notify(n(1, { prev: 0 }));
  await flush();
  assert.deepEqual(c.got, [1]);
  // Heartbeats keep the followers following.
  await w.clock.advance(LEADER_TIMEOUT_MS * 3);
  assert.equal(FakeWebSocket.instances.length, 1);
  // The leader leaves (it says bye): exactly one follower takes over.
  a.h.close();
  await w.clock.advance(1000);
  assert.equal([b.h.leader, c.h.leader].filter(Boolean).length, 1);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(FakeWebSocket.instances[1].params.get('after'), '1');
  b.h.close();
  c.h.close();
});

test('BroadcastChannel election: a leader that vanishes silently is replaced after the timeout', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: null });
  const a = tab(w, w.storage);
  await w.clock.advance(CLAIM_MS);
  const b = tab(w, w.storage);
  await w.clock.advance(CLAIM_MS * 2);
  assert.equal(b.h.leader, false);
  // Simulate a crashed tab: it stops talking without a bye.
  const silent = a.h as unknown as { election: { stop(): void; role: string }; bus: { close(): void } };
  silent.election.role = 'stopped';
  silent.bus.close();
  await w.clock.advance(LEADER_TIMEOUT_MS + CLAIM_MS + 100);
  assert.equal(b.h.leader, true);
  b.h.close();
});

test('followers see the unread-only replay as the leader does, and adopt its synced seq', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: new FakeLocks() });
  const a = tab(w, null);
  await flush();
  const b = tab(w, null);
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.notify(n(3));
  ws.notify(n(7)); // prev 6: a read one in between, not replayed
  ws.synced(9, 2);
  ws.notify(n(10));
  await flush();
  assert.deepEqual(a.got, [3, 7, 10]);
  assert.deepEqual(b.got, [3, 7, 10]);
  assert.equal(b.h.cursor, 10);
  assert.equal(w.server.callsTo('/v1/notifications').length, 0, 'no gap fetch anywhere');
  a.h.close();
  b.h.close();
});

test("a new leader starts on the old leader's transport, and still tries to move up", async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: new FakeLocks() });
  const a = tab(w, w.storage);
  await flush();
  const b = tab(w, w.storage);
  await flush();
  FakeWebSocket.instances[0].fail();
  await w.clock.advance(0);
  const es = FakeEventSource.instances[0];
  es.event('synced', { seq: 0, unread: 0 });
  await flush();
  assert.equal(b.h.transport, 'sse');
  a.h.close();
  await flush();
  assert.equal(b.h.leader, true);
  assert.equal(FakeWebSocket.instances.length, 1, 'no new WebSocket attempt at takeover');
  assert.equal(FakeEventSource.instances.length, 2);
  FakeEventSource.instances[1].event('synced', { seq: 0, unread: 0 });
  await w.clock.advance(70000);
  assert.equal(FakeWebSocket.instances.length, 2);
  b.h.close();
});

test('BroadcastChannel election: tabs that start together end with one leader', async () => {
  const hub = new FakeBroadcastHub();
  const w = world({ hub, locks: null });
  const tabs = [tab(w, w.storage), tab(w, w.storage), tab(w, w.storage), tab(w, w.storage)];
  await w.clock.advance(CLAIM_MS * 2);
  assert.equal(tabs.filter((t) => t.h.leader).length, 1);
  assert.equal(FakeWebSocket.instances.length, 1);
  await w.clock.advance(LEADER_TIMEOUT_MS * 5);
  assert.equal(tabs.filter((t) => t.h.leader).length, 1);
  assert.equal(FakeWebSocket.instances.length, 1);
  for (const t of tabs) t.h.close();
});
