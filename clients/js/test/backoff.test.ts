import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, backoffCeiling } from '../src/backoff.js';
import { seeded } from './fakes.js';

test('backoff ceiling doubles from 1 s and stops at 30 s', () => {
  const want = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  assert.deepEqual(
    want.map((_, i) => backoffCeiling(i, 1000, 30000)),
    want,
  );
  assert.equal(backoffCeiling(5000, 1000, 30000), 30000);
});

test('full jitter: every delay is in [0, ceiling), and they are spread', () => {
  const b = new Backoff({ random: seeded(42) });
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) delays.push(b.next());
  delays.forEach((d, i) => {
    assert.ok(d >= 0 && d < backoffCeiling(i, 1000, 30000), `attempt ${i}: ${d}`);
    assert.ok(Number.isInteger(d));
  });
  // Not all at the ceiling nor all at zero: the random source is used.
  assert.ok(new Set(delays).size > 6);
  // Same seed, same schedule.
  const again = new Backoff({ random: seeded(42) });
  assert.deepEqual(delays, delays.map(() => again.next()));
});

test('extremes of the random source give 0 and just under the ceiling', () => {
  const lo = new Backoff({ random: () => 0 });
  const hi = new Backoff({ random: () => 0.999999 });
  for (let i = 0; i < 8; i++) {
    assert.equal(lo.next(), 0);
    assert.equal(hi.next(), Math.floor(0.999999 * backoffCeiling(i, 1000, 30000)));
  }
});

test('reset starts the schedule over', () => {
  const b = new Backoff({ random: () => 0.5 });
  assert.equal(b.next(), 500);
  assert.equal(b.next(), 1000);
  assert.equal(b.next(), 2000);
  assert.equal(b.attempt, 3);
  b.reset();
  assert.equal(b.attempt, 0);
  assert.equal(b.next(), 500);
});

test('base and cap are options', () => {
  const b = new Backoff({ base: 100, cap: 250, random: () => 0.999 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [99, 199, 249, 249]);
});
