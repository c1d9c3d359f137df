import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { reapStale, mountsUnder } from './harness/scratch.js';

test('a test process killed with SIGKILL leaves nothing the next run cannot clean', async () => {
  const child = spawn(process.execPath, [new URL('./harness/crash-child.js', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
  });
  const { scratch, api } = JSON.parse(first) as { scratch: string; api: string };
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));

  // The orphans are really there...
  assert.equal(mountsUnder(scratch).length, 1);
  assert.equal((await fetch(`${api}/api/v0/version`, { method: 'POST' })).status, 200);

  // ...and the next run's reaper removes them.
  reapStale();
  assert.deepEqual(mountsUnder(scratch), []);
  assert.equal(existsSync(scratch), false);
  await assert.rejects(fetch(`${api}/api/v0/version`, { method: 'POST' }));
});
