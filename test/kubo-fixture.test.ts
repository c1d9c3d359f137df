import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';

let scratch: string;
let kubo: KuboNode;

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
});
after(async () => {
  await kubo?.stop();
  destroyScratch(scratch);
});

test('kubo fixture: add then ranged cat returns exactly the original bytes', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const cid = kubo.add(data);
  assert.match(cid, /^baf/);
  for (const [offset, length] of [[0, 10], [1, 262144], [262143, 2], [data.length - 5, 5], [1_000_000, 1_500_000]] as const) {
    const res = await fetch(`${kubo.apiUrl}/api/v0/cat?arg=${cid}&offset=${offset}&length=${length}`, { method: 'POST' });
    assert.equal(res.status, 200);
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, length);
    assert.ok(got.equals(data.subarray(offset, offset + length)), `bytes differ at offset ${offset}`);
  }
});
