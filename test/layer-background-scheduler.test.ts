import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackgroundScheduler } from '../src/layer/background-scheduler.js';
import { sleep } from './harness/proc.js';

test('background work waits for a quiet period and never exceeds max concurrency', async () => {
  const s = new BackgroundScheduler(2, 100);
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const t0 = Date.now();
  s.foreground();
  await Promise.all(
    [1, 2, 3, 4, 5].map(() =>
      s.submit(async () => {
        started.push(Date.now() - t0);
        running++;
        peak = Math.max(peak, running);
        await sleep(30);
        running--;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.ok(started.every((ms) => ms >= 95), `started too early: ${started.join(',')}`);
  s.close();
});

test('a foreground read preempts running background work, which is retried later', async () => {
  const s = new BackgroundScheduler(1, 50);
  let attempts = 0;
  let aborted = 0;
  const done = s.submit(
    (signal) =>
      new Promise<void>((resolve, reject) => {
        attempts++;
        const t = setTimeout(resolve, 150);
        signal.addEventListener('abort', () => {
          aborted++;
          clearTimeout(t);
          reject(signal.reason);
        });
      }),
  );
  await sleep(20);
  s.foreground();
  await done;
  assert.equal(aborted, 1);
  assert.equal(attempts, 2);
  s.close();
});

test('a task that keeps failing is given up, not retried forever', async () => {
  const s = new BackgroundScheduler(1, 0);
  let attempts = 0;
  await assert.rejects(
    s.submit(async () => {
      attempts++;
      throw new Error('corrupt chunk');
    }),
    /corrupt chunk/,
  );
  assert.equal(attempts, 3);
  s.close();
});

test('foreground work that never pauses: after starveMs one task runs alongside it, unpreempted', async () => {
  const s = new BackgroundScheduler(2, 100, 300);
  const t0 = Date.now();
  let busy = true;
  const reads = (async () => {
    while (busy) {
      s.foreground();
      await sleep(20);
    }
  })();
  let running = 0;
  let peak = 0;
  let aborted = 0;
  const started: number[] = [];
  const task = (signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      started.push(Date.now() - t0);
      running++;
      peak = Math.max(peak, running);
      const t = setTimeout(() => {
        running--;
        resolve();
      }, 100);
      signal.addEventListener('abort', () => {
        aborted++;
        running--;
        clearTimeout(t);
        reject(signal.reason);
      });
    });
  await Promise.all([s.submit(task), s.submit(task), s.submit(task)]);
  busy = false;
  await reads;
  assert.ok(started[0]! >= 280, `first task started after ${started[0]} ms of reads`);
  assert.equal(aborted, 0, 'a task running alongside reads is not preempted');
  assert.equal(peak, 1, 'one at a time while reads go on');
  assert.ok(Date.now() - t0 < 1000, 'the tasks ran while the reads went on');
  s.close();
});
