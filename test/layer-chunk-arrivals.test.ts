/**
 * Chunks of one ranged read are decoded as their bytes arrive, from a reused range buffer
 * (src/layer/chunk-reader.ts, src/layer/range-buffers.ts), against a real Kubo node: a read
 * that Kubo fails part-way (a block removed from its blockstore) still delivers, verifies and
 * caches the chunks before the gap, and fails the ones after it; buffers go back to the pool;
 * readahead waits for the reader's own first chunk.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { estargzOf } from './harness/layer-blobs.js';
import { openEstargz } from '../src/estargz/index.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { IpfsBlobSource } from '../src/source/ipfs-source.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { ChunkReader } from '../src/layer/chunk-reader.js';
import { RangeBuffers } from '../src/layer/range-buffers.js';
import type { BlobSource } from '../src/source/blob-source.js';
import { createLogger } from '../src/log/logger.js';
import { isSgError } from '../src/errors.js';

const MiB = 1024 * 1024;
const CHUNK = 2 * MiB;

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

const log = createLogger('error');

async function layerInKubo(data: Buffer) {
  const { blob, result } = await estargzOf([{ name: 'data.bin', data }], CHUNK);
  const cid = kubo.cli(['add', '-Q', '--cid-version=1', '--raw-leaves', '--pin=false'], blob).toString().trim();
  const client = new IpfsClient({ endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }), log, retries: 0 });
  const source = new IpfsBlobSource(cid, client);
  const layout = await openEstargz(source, { tocDigest: result.tocDigest });
  const node = layout.model.lookup('data.bin')!;
  return { cid, blob, source, node };
}

test('the chunks before a gap Kubo cannot serve are delivered and cached; the ones after fail; the range buffer is reused', async () => {
  const data = randomBytes(4 * CHUNK);
  const { cid, source, node } = await layerInKubo(data);
  assert.equal(node.chunks.length, 4);
  // Remove a block wholly inside the last chunk (2 MiB of 256 KiB leaves): Kubo then ends
  // the body early with an X-Stream-Error trailer, after sending everything before it.
  const leaves = kubo.cli(['refs', cid]).toString().trim().split('\n');
  const leafBytes = 256 * 1024;
  const gapLeaf = Math.ceil(node.chunks[3]!.offset / leafBytes) + 1;
  kubo.cli(['block', 'rm', leaves[gapLeaf]!]);

  const cache = await ChunkCache.open({ dir: join(scratch, `cache-${Date.now()}`), maxBytes: 64 * MiB });
  const buffers = new RangeBuffers();
  const reader = new ChunkReader({ source, cache, log, rangeBuffers: buffers, readaheadBytes: 0 });
  await assert.rejects(reader.read(node, 0, data.length), (e: unknown) => isSgError(e, 'UNAVAILABLE'));
  for (let i = 0; i < 3; i++) {
    await waitFor(() => cache.has(node.chunks[i]!.digest), `chunk ${i} (before the gap) verified and cached`);
    const got = await reader.read(node, i * CHUNK, CHUNK);
    assert.ok(got.equals(data.subarray(i * CHUNK, (i + 1) * CHUNK)), `chunk ${i} bytes`);
  }
  assert.ok(!cache.has(node.chunks[3]!.digest), 'the chunk behind the gap is not cached');
  await waitFor(() => buffers.held > 0, 'the range buffer went back to the pool');
  const held = buffers.held;
  const again = buffers.take(held - 1);
  assert.equal(again.length, held, 'the next range of that size class takes the same buffer');
  assert.equal(buffers.held, 0);
});

test('reads through the pool give the right bytes when ranges of many sizes reuse buffers', async () => {
  const data = randomBytes(6 * CHUNK + 12345);
  const { source, node } = await layerInKubo(data);
  const cache = await ChunkCache.open({ dir: join(scratch, `cache2-${Date.now()}`), maxBytes: 1 });
  const buffers = new RangeBuffers();
  // No memory kept and no cache (bound of 1 byte): every read fetches again, from pooled buffers.
  const reader = new ChunkReader({ source, cache, log, rangeBuffers: buffers, memoryBytes: 1, readaheadBytes: 0 });
  for (let round = 0; round < 3; round++) {
    for (const [offset, length] of [[0, data.length], [CHUNK - 10, 3 * CHUNK], [5 * CHUNK, CHUNK + 12345], [0, 1]] as const) {
      const got = await reader.read(node, offset, length);
      assert.ok(got.equals(data.subarray(offset, offset + length)), `round ${round}: ${offset}+${length}`);
    }
  }
  await waitFor(() => buffers.held > 0, 'buffers were given back');
});

test("a sequential reader's first read is fetched alone; readahead starts once its chunk is in", async () => {
  const data = randomBytes(6 * CHUNK);
  const { source, node } = await layerInKubo(data);
  // The real source, with each range read's start and end recorded.
  const calls: { offset: number; started: number; ended?: number }[] = [];
  const recorded: BlobSource = {
    describe: source.describe,
    size: (signal) => source.size(signal),
    readRange: async (offset, length, signal, opts) => {
      const call: { offset: number; started: number; ended?: number } = { offset, started: performance.now() };
      calls.push(call);
      const bytes = await source.readRange(offset, length, signal, opts);
      call.ended = performance.now();
      return bytes;
    },
  };
  const cache = await ChunkCache.open({ dir: join(scratch, `cache3-${Date.now()}`), maxBytes: 64 * MiB });
  const reader = new ChunkReader({ source: recorded, cache, log, readaheadBytes: 4 * CHUNK });
  // Two reads in the first chunk at once, as the kernel sends them.
  const [a, b] = await Promise.all([reader.read(node, 0, MiB), reader.read(node, MiB, MiB)]);
  assert.ok(Buffer.concat([a, b]).equals(data.subarray(0, 2 * MiB)));
  await waitFor(() => calls.length > 1 && calls.every((c) => c.ended !== undefined), 'readahead fetched');
  const first = calls[0]!;
  assert.equal(first.offset, node.chunks[0]!.offset, 'the first request is the reader\'s own chunk');
  for (const c of calls.slice(1)) assert.ok(c.started >= first.ended!, `readahead at ${c.offset} started before the first chunk was in`);
  const aheadOffsets = calls.slice(1).map((c) => c.offset);
  assert.ok(aheadOffsets.includes(node.chunks[1]!.offset), 'the next chunk was fetched ahead');
});

test('RangeBuffers: small ranges are not pooled, classes are whole MiB, idle bytes are bounded', () => {
  const pool = new RangeBuffers();
  const small = pool.take(1000);
  assert.equal(small.length, 1000);
  pool.give(small);
  assert.equal(pool.held, 0, 'a buffer under 1 MiB is not kept');
  const a = pool.take(MiB + 1);
  assert.equal(a.length, 2 * MiB);
  pool.give(a);
  assert.equal(pool.held, 2 * MiB);
  assert.equal(pool.take(2 * MiB), a, 'same class: the same buffer');
  assert.notEqual(pool.take(2 * MiB), a, 'taken once only');
  const many = Array.from({ length: 40 }, () => pool.take(4 * MiB));
  for (const b of many) pool.give(b);
  assert.ok(pool.held <= 64 * MiB, `held ${pool.held}`);
});

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
