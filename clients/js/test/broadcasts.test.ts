import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, RECENT_BROADCASTS } from '../src/herald.js';
import { BroadcastMerge } from '../src/broadcasts.js';
import type { Broadcast, Environment, Notification } from '../src/types.js';
import {
  FakeBroadcastHub,
  FakeEventSource,
  FakeLocks,
  FakeWebSocket,
  MemoryStorage,
  bc,
  flush,
  n,
  token,
  world,
} from './fakes.js';

function start(w: ReturnType<typeof world>, extra: Record<string, unknown> = {}) {
  const h = new Herald({
    url: 'http://h.test',
    token: token('ada'),
    storage: w.storage,
    env: w.env,
    liveBroadcasts: true,
    ...extra,
  });
  const got: Notification[] = [];
  const broadcasts: Broadcast[] = [];
  const unread: number[] = [];
  h.on('notification', (x) => got.push(x));
  h.on('broadcast', (b) => broadcasts.push(b));
  h.on('unread', (c) => unread.push(c));
  return { h, got, broadcasts, unread };
}

test('liveBroadcasts asks for broadcasts=live on the WebSocket and SSE, not on the long poll; off by default', async () => {
  for (const live of [false, true]) {
    const w = world();
    const { h } = start(w, { liveBroadcasts: live, storage: null });
    await flush();
    const ws = FakeWebSocket.instances[0];
    assert.equal(ws.params.get('broadcasts'), live ? 'live' : null);
    ws.open();
    ws.synced(3, 0);
    await flush();
    ws.serverClose(1006);
    await w.clock.advance(1000);
    const again = FakeWebSocket.instances[1];
    assert.equal(again.params.get('after'), '3');
    assert.equal(again.params.get('broadcasts'), live ? 'live' : null, 'a reconnect asks again');
    h.close();

    const sse = start(w, { liveBroadcasts: live, storage: null, transport: 'sse' });
    await flush();
    assert.equal(FakeEventSource.instances[0].params.get('broadcasts'), live ? 'live' : null);
    sse.h.close();

    const lp = start(w, { liveBroadcasts: live, storage: null, transport: 'longpoll' });
    await flush();
    const polls = w.server.callsTo('/v1/notifications');
    assert.ok(polls.length > 0);
    for (const p of polls) assert.equal(p.url.searchParams.get('broadcasts'), null, 'the long poll has no broadcasts');
    lp.h.close();
    w.server.release();
  }
  const w = world();
  assert.throws(
    () => new Herald({ url: 'http://h.test', token: 't', liveBroadcasts: 'yes' as never, env: w.env }),
    /options.liveBroadcasts/,
  );
});

test('websocket: a broadcast is emitted at once and moves neither the cursor, the unread count nor the gap check', async () => {
  const w = world();
  const { h, got, broadcasts, unread } = start(w);
  const states: string[] = [];
  h.on('state', (s) => states.push(s.state));
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.notify(n(2, { prev: 1 })); // unread-only replay
  ws.broadcast(bc('evt-all-1')); // may come before synced: outside the seq order
  ws.synced(5, 1);
  await flush();
  assert.deepEqual(broadcasts, [bc('evt-all-1')], 'emitted as received');
  assert.equal(h.cursor, 5);
  ws.broadcast(bc('evt-all-2', { title: undefined, data: { url: '/x' } }));
  await flush();
  assert.deepEqual(broadcasts.map((b) => b.event_id), ['evt-all-1', 'evt-all-2']);
  assert.equal(h.cursor, 5, 'a broadcast does not move the cursor');
  assert.equal(w.storage.getItem('herald:cursor:ada'), '5');
  assert.equal(h.unread, 1, 'nor the unread count');
  assert.deepEqual(unread, [1]);
  assert.deepEqual(got.map((x) => x.seq), [2]);
  assert.equal(h.state, 'synced');
  assert.deepEqual(states, ['connecting', 'open', 'synced']);
  // The next notification follows the cursor: no gap, no fetch.
  ws.notify(n(6, { event_id: 'evt-all-1' }));
  await flush();
  assert.equal(w.server.calls.length, 0, 'no gap fetch, no count read');
  assert.deepEqual(got.map((x) => x.seq), [2, 6]);
  assert.equal(h.cursor, 6);
  assert.equal(h.unread, 2, 'the notification counts, as any other');
  ws.serverClose(1006);
  await w.clock.advance(1000);
  assert.equal(FakeWebSocket.instances[1].params.get('after'), '6');
  h.close();
});

test('merge by event_id: the notification after a broadcast supersedes it; repeats and late broadcasts are dropped', async () => {
  const w = world();
  const { h, got, broadcasts } = start(w, { storage: null });
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(10, 0);
  ws.broadcast(bc('evt-a'));
  ws.broadcast(bc('evt-a')); // the same broadcast again (another gateway, a reconnect)
  await flush();
  assert.deepEqual(broadcasts.map((b) => b.event_id), ['evt-a'], 'a repeat is dropped');

  ws.notify(n(11, { event_id: 'evt-a' }));
  await flush();
  assert.equal(got.length, 1);
  assert.equal(got[0].seq, 11, 'still delivered as a notification');
  assert.equal(got[0].supersedes, 'evt-a');
  assert.equal(got[0].event_id, 'evt-a');

  ws.broadcast(bc('evt-a')); // after its notification
  ws.notify(n(12, { event_id: 'evt-b' })); // a notification never broadcast live: not flagged
  await flush();
  assert.equal('supersedes' in got[1], false);
  ws.broadcast(bc('evt-b')); // a broadcast whose notification came first
  await flush();
  assert.deepEqual(broadcasts.map((b) => b.event_id), ['evt-a'], 'broadcasts after their notification are dropped');
  assert.equal(h.cursor, 12);

  // Malformed broadcasts are ignored; unknown frame types still are too.
  ws.frame({ type: 'broadcast' });
  ws.frame({ type: 'broadcast', broadcast: { topic: 'x' } });
  ws.frame({ type: 'broadcast', broadcast: 'evt-c' });
  ws.frame({ type: 'something-newer', x: 1 });
  await flush();
  assert.equal(broadcasts.length, 1);
  assert.equal(h.state, 'synced');
  assert.equal(ws.closedByClient, false);
  h.close();
});

test('a broadcast during a gap fill is emitted at once, and the filled notification supersedes it', async () => {
  const w = world();
  const { h, got, broadcasts } = start(w, { storage: null });
  const resyncs: unknown[] = [];
  h.on('resync', (i) => resyncs.push(i));
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(6, 0);
  await flush();
  w.server.add(n(7), n(8, { event_id: 'evt-8' }));
  ws.notify(n(9)); // prev 8: fetches 7 and 8
  ws.broadcast(bc('evt-8'));
  assert.deepEqual(broadcasts.map((b) => b.event_id), ['evt-8'], 'not queued behind the fetch');
  await flush();
  assert.deepEqual(got.map((x) => [x.seq, x.supersedes]), [
    [7, undefined],
    [8, 'evt-8'],
    [9, undefined],
  ]);
  assert.deepEqual(resyncs, [{ reason: 'gap', from: 6, seq: 9 }]);
  assert.equal(h.cursor, 9);
  h.close();
});

test('SSE: the broadcast event (no id) is emitted and leaves the cursor and the resume point alone', async () => {
  const w = world();
  w.storage.setItem('herald:cursor:ada', '4');
  const { h, got, broadcasts } = start(w, { transport: 'sse' });
  await flush();
  const es = FakeEventSource.instances[0];
  assert.equal(es.params.get('after'), '4');
  assert.equal(es.params.get('broadcasts'), 'live');
  es.open();
  es.event('synced', { seq: 4, unread: 0 }, '4');
  es.event('broadcast', bc('evt-5'));
  es.event('broadcast', bc('evt-5'));
  await flush();
  assert.deepEqual(broadcasts.map((b) => b.event_id), ['evt-5']);
  assert.equal(h.cursor, 4);
  assert.equal(h.unread, 0);
  es.event('notification', n(5, { event_id: 'evt-5' }), '5');
  await flush();
  assert.deepEqual(got.map((x) => [x.seq, x.supersedes]), [[5, 'evt-5']]);
  es.event('close', { code: 1012, reason: 'restarting' });
  await w.clock.advance(1000);
  const again = FakeEventSource.instances[1];
  assert.equal(again.params.get('after'), '5');
  assert.equal(again.params.get('broadcasts'), 'live');
  again.event('broadcast', bc('evt-5')); // sent again on the new stream: already merged
  await flush();
  assert.equal(broadcasts.length, 1);
  h.close();
});

test('an SSE stream whose first event is a broadcast counts as open', async () => {
  const w = world();
  const { h, broadcasts } = start(w, { transport: 'sse', storage: null });
  await flush();
  const es = FakeEventSource.instances[0];
  es.open();
  es.event('broadcast', bc('evt-1'));
  await w.clock.advance(30000);
  assert.equal(broadcasts.length, 1);
  assert.equal(h.state, 'open');
  assert.equal(FakeEventSource.instances.length, 1, 'not taken for a silent stream');
  h.close();
});

test('without liveBroadcasts, broadcast frames are ignored and no notification is flagged', async () => {
  const w = world();
  const { h, got, broadcasts } = start(w, { liveBroadcasts: undefined, storage: null });
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(0, 0);
  ws.broadcast(bc('evt-1'));
  ws.notify(n(1, { prev: 0 }));
  await flush();
  assert.deepEqual(broadcasts, []);
  assert.deepEqual(got.map((x) => x.seq), [1]);
  assert.equal('supersedes' in got[0], false);
  h.close();
});

test('the merge remembers the last RECENT_BROADCASTS event ids', async () => {
  assert.equal(RECENT_BROADCASTS, 1024);
  const m = new BroadcastMerge(2);
  assert.equal(m.broadcast('a'), true);
  assert.equal(m.broadcast('b'), true);
  assert.equal(m.broadcast('a'), false);
  assert.equal(m.broadcast('c'), true); // forgets a
  assert.equal(m.notification('a'), false, 'forgotten: not flagged');
  assert.equal(m.notification('c'), true);
  assert.equal(m.notification('c'), false, 'superseded once');
  assert.equal(m.broadcast('c'), false);
  assert.equal(m.notification('x'), false);
  assert.equal(m.broadcast('c'), false);
  assert.equal(m.notification('y'), false);
  assert.equal(m.broadcast('c'), true, 'forgotten after two more notifications');

  const w = world();
  const { h, got, broadcasts } = start(w, { storage: null });
  await flush();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  ws.synced(0, 0);
  for (let i = 0; i <= RECENT_BROADCASTS; i++) ws.broadcast(bc('evt-' + i));
  ws.notify(n(1, { prev: 0, event_id: 'evt-0' }));
  ws.notify(n(2, { event_id: 'evt-' + RECENT_BROADCASTS }));
  await flush();
  assert.equal(broadcasts.length, RECENT_BROADCASTS + 1);
  assert.deepEqual(got.map((x) => x.supersedes), [undefined, 'evt-' + RECENT_BROADCASTS]);
  h.close();
});

function tab(w: ReturnType<typeof world>, storage: MemoryStorage | null, extra: { liveBroadcasts?: boolean; env?: Partial<Environment> } = {}) {
  const h = new Herald({
    url: 'http://h.test',
    token: token('ada'),
    storage,
    liveBroadcasts: extra.liveBroadcasts ?? true,
    env: { ...w.env, ...extra.env },
  });
  const got: Notification[] = [];
  const broadcasts: string[] = [];
  h.on('notification', (x) => got.push(x));
  h.on('broadcast', (b) => broadcasts.push(b.event_id));
  return { h, got, broadcasts };
}

test('tabs: the leader relays broadcasts, each tab merges them itself, a new leader keeps what it emitted', async () => {
  const hub = new FakeBroadcastHub();
  const locks = new FakeLocks();
  const w = world({ hub, locks });
  const a = tab(w, w.storage);
  await flush();
  const b = tab(w, w.storage);
  const c = tab(w, w.storage);
  const off = tab(w, w.storage, { liveBroadcasts: false });
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(a.h.leader, true);
  const ws = FakeWebSocket.instances[0];
  assert.equal(ws.params.get('broadcasts'), 'live', "the leader's option");
  ws.open();
  ws.synced(3, 0);
  await flush();
  ws.broadcast(bc('evt-x'));
  ws.broadcast(bc('evt-x'));
  await flush();
  for (const t of [a, b, c]) {
    assert.deepEqual(t.broadcasts, ['evt-x']);
    assert.equal(t.h.cursor, 3);
  }
  assert.deepEqual(off.broadcasts, [], 'a tab without liveBroadcasts ignores them');
  assert.equal(w.storage.getItem('herald:cursor:ada'), '3');
  assert.equal(w.server.calls.length, 0, 'no follower catches up after a broadcast');

  // The leader goes away; the next one connects, and gets the broadcast again.
  a.h.close();
  await flush();
  assert.equal(b.h.leader, true);
  const ws2 = FakeWebSocket.instances[1];
  assert.equal(ws2.params.get('after'), '3');
  assert.equal(ws2.params.get('broadcasts'), 'live');
  ws2.open();
  ws2.synced(3, 0);
  ws2.broadcast(bc('evt-x'));
  ws2.broadcast(bc('evt-y'));
  await flush();
  assert.deepEqual(b.broadcasts, ['evt-x', 'evt-y']);
  assert.deepEqual(c.broadcasts, ['evt-x', 'evt-y']);
  ws2.notify(n(4, { event_id: 'evt-x' }));
  ws2.notify(n(5, { event_id: 'evt-y' }));
  await flush();
  for (const t of [b, c]) assert.deepEqual(t.got.map((x) => [x.seq, x.supersedes]), [[4, 'evt-x'], [5, 'evt-y']]);
  assert.deepEqual(off.got.map((x) => [x.seq, x.supersedes]), [[4, undefined], [5, undefined]]);
  assert.equal(c.h.cursor, 5);
  b.h.close();
  c.h.close();
  off.h.close();
});
