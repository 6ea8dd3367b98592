import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cursor, cursorKey, jwtSubject } from '../src/cursor.js';
import { Sequencer } from '../src/sequencer.js';
import type { Notification, ResyncInfo } from '../src/types.js';
import { MemoryStorage, n, token } from './fakes.js';

test('jwtSubject reads sub from a base64url payload without verifying', () => {
  assert.equal(jwtSubject(token('ada')), 'ada');
  // Characters that need base64url's - and _ and no padding.
  const sub = 'ü?>>~~ user/with+odd';
  assert.equal(jwtSubject(token(sub)), sub);
  assert.throws(() => jwtSubject('nope'), /not a JWT/);
  assert.throws(() => jwtSubject('a.' + Buffer.from('{"x":1}').toString('base64url') + '.c'), /no sub/);
  assert.throws(() => jwtSubject('a.!!!.c'), /base64url|JSON/);
});

test('the cursor is stored per user and read back', () => {
  const s = new MemoryStorage();
  const c = new Cursor(s, cursorKey('ada'));
  assert.equal(c.seq, 0);
  c.set(12);
  assert.equal(s.getItem('herald:cursor:ada'), '12');
  assert.equal(new Cursor(s, cursorKey('ada')).seq, 12);
  assert.equal(new Cursor(s, cursorKey('bob')).seq, 0);
  s.setItem('herald:cursor:eve', 'garbage');
  assert.equal(new Cursor(s, cursorKey('eve')).seq, 0);
  const mem = new Cursor(null, cursorKey('ada'));
  mem.set(3);
  assert.equal(mem.seq, 3);
  const quiet = new Cursor(s, cursorKey('ada'));
  quiet.persist = false;
  quiet.set(99);
  assert.equal(s.getItem('herald:cursor:ada'), '12');
});

function seqWith(inbox: Notification[], start = 0) {
  const c = new Cursor(null, 'k');
  if (start) c.set(start);
  const got: number[] = [];
  const resyncs: ResyncInfo[] = [];
  const fetches: number[] = [];
  const s = new Sequencer(c, {
    fetchAfter: async (after) => {
      fetches.push(after);
      return inbox.filter((x) => x.seq > after).slice(0, 2); // small pages: the sequencer pages
    },
    deliver: (x) => got.push(x.seq),
    resync: (i) => resyncs.push(i),
  });
  return { c, s, got, resyncs, fetches };
}

test('duplicates (same seq, same id) are skipped', async () => {
  const t = seqWith([]);
  for (const x of [n(1, { prev: 0 }), n(2), n(2), n(1), n(3), n(3)]) await t.s.push(x);
  assert.deepEqual(t.got, [1, 2, 3]);
  assert.deepEqual(t.resyncs, []);
  assert.equal(t.c.seq, 3);
});

test('a prev that is not the cursor fetches the gap and delivers it first', async () => {
  const inbox = [n(5), n(6), n(7), n(8), n(9), n(10)];
  const t = seqWith(inbox, 5);
  await t.s.push(n(10)); // prev 9, cursor 5: 6..9 are missing
  assert.deepEqual(t.got, [6, 7, 8, 9, 10]);
  assert.deepEqual(t.fetches, [5, 7, 9]);
  assert.deepEqual(t.resyncs, [{ reason: 'gap', from: 5, seq: 10 }]);
  // Later ones are contiguous again: no fetch.
  await t.s.push(n(11));
  assert.deepEqual(t.fetches, [5, 7, 9]);
  assert.equal(t.c.seq, 11);
});

test('a failed gap fetch leaves the cursor before the gap', async () => {
  const c = new Cursor(null, 'k');
  c.set(4);
  const got: number[] = [];
  const s = new Sequencer(c, {
    fetchAfter: async () => {
      throw new Error('offline');
    },
    deliver: (x) => got.push(x.seq),
    resync: () => undefined,
  });
  await assert.rejects(s.push(n(8)), /offline/);
  assert.equal(c.seq, 4);
  assert.deepEqual(got, []);
  // The queue keeps working after a failure.
  await s.push(n(5));
  assert.deepEqual(got, [5]);
});

test('no gap check without a cursor or while checkGaps is off', async () => {
  const t = seqWith([]);
  await t.s.push(n(4));
  t.s.checkGaps = false;
  await t.s.push(n(9));
  assert.deepEqual(t.got, [4, 9]);
  assert.deepEqual(t.fetches, []);
});

test('the same seq with another id is a conflict: resync, the new one wins', async () => {
  const t = seqWith([]);
  for (const x of [n(1, { prev: 0 }), n(2), n(3), n(4)]) await t.s.push(x);
  await t.s.push(n(3, { id: 'other-3' }));
  assert.deepEqual(t.resyncs, [{ reason: 'conflict', from: 4, seq: 3, oldId: 'id-3', newId: 'other-3' }]);
  assert.deepEqual(t.got, [1, 2, 3, 4, 3]);
  assert.equal(t.c.seq, 3);
  // The gateway continues from there: 4 comes again and is delivered again.
  await t.s.push(n(4));
  assert.deepEqual(t.got, [1, 2, 3, 4, 3, 4]);
  // The replaced copy coming back late is a conflict again only if its id differs from the truth.
  await t.s.push(n(3, { id: 'other-3' }));
  assert.equal(t.resyncs.length, 1);
});

test('synced adopts the server seq, or rewinds when the inbox is behind', async () => {
  const t = seqWith([]);
  t.s.checkGaps = false;
  await t.s.synced(20);
  assert.equal(t.c.seq, 20);
  assert.equal(t.s.checkGaps, true);
  await t.s.synced(20);
  assert.deepEqual(t.resyncs, []);
  await t.s.synced(12);
  assert.equal(t.c.seq, 12);
  assert.deepEqual(t.resyncs, [{ reason: 'rewind', from: 20, seq: 12 }]);
});
