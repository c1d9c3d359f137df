import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRead, chunkAt } from '../src/layer/read-plan.js';

const starts = [0, 4096, 8192, 12288];
const size = 14000;

test('planRead covers exactly the chunks a range touches', () => {
  assert.deepEqual(planRead(starts, size, 0, 10), [{ chunk: 0, skip: 0, take: 10 }]);
  assert.deepEqual(planRead(starts, size, 4090, 12), [
    { chunk: 0, skip: 4090, take: 6 },
    { chunk: 1, skip: 0, take: 6 },
  ]);
  assert.deepEqual(planRead(starts, size, 4096, 4096), [{ chunk: 1, skip: 0, take: 4096 }]);
  assert.deepEqual(planRead(starts, size, 0, size), [
    { chunk: 0, skip: 0, take: 4096 },
    { chunk: 1, skip: 0, take: 4096 },
    { chunk: 2, skip: 0, take: 4096 },
    { chunk: 3, skip: 0, take: 1712 },
  ]);
});

test('planRead clamps at end of file and handles empty ranges', () => {
  assert.deepEqual(planRead(starts, size, 13990, 100), [{ chunk: 3, skip: 1702, take: 10 }]);
  assert.deepEqual(planRead(starts, size, size, 10), []);
  assert.deepEqual(planRead(starts, size, 100, 0), []);
  assert.deepEqual(planRead([], 0, 0, 10), []);
});

test('chunkAt finds the chunk holding an offset', () => {
  assert.equal(chunkAt(starts, 0), 0);
  assert.equal(chunkAt(starts, 4095), 0);
  assert.equal(chunkAt(starts, 4096), 1);
  assert.equal(chunkAt(starts, 13999), 3);
  assert.equal(chunkAt([0], 5), 0);
});
