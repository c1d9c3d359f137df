/**
 * cache.warm_read: 256 MiB held as 4 MiB chunks in the chunk cache, every chunk read with
 * get(), against the same bytes read in 4 MiB pieces from one plain file on the same disk.
 * Both warm (page cache), both into a fresh buffer per piece, as a caller that keeps the
 * bytes would need.
 *
 * cache.index_1m: a cache directory with 1,000,000 tiny entries: heap taken by the index,
 * open after a clean close (index snapshot) and after a crash (scan of every file).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { emit } from './report.js';
import { makeScratch, destroyScratch, reapStale } from '../test/harness/scratch.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { prefixes } from '../src/cache/scan.js';

const MiB = 1024 * 1024;
const DATA = 256 * MiB;
const CHUNK = 4 * MiB;
const ROUNDS = 5;
const INDEX_ENTRIES = 1_000_000;

export async function run(): Promise<void> {
  reapStale();
  const scratch = makeScratch();
  try {
    await warmRead(scratch);
    await index1m(join(scratch, 'index'));
  } finally {
    // rm(1) unlinks a million files several times faster than fs.rmSync.
    execFileSync('rm', ['-rf', join(scratch, 'index')]);
    destroyScratch(scratch);
  }
}

async function warmRead(scratch: string): Promise<void> {
  const data = randomBytes(DATA);
  const plain = join(scratch, 'plain.bin');
  writeFileSync(plain, data);
  const cache = await ChunkCache.open({ dir: join(scratch, 'cache'), maxBytes: 2 * DATA });
  const digests: string[] = [];
  for (let o = 0; o < DATA; o += CHUNK) {
    const chunk = data.subarray(o, o + CHUNK);
    const digest = `sha256:${createHash('sha256').update(chunk).digest('hex')}`;
    if (!(await cache.put(digest, chunk))) throw new Error('cache did not store a chunk');
    digests.push(digest);
  }

  let cacheSeconds = Infinity;
  let fileSeconds = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    let t = performance.now();
    const fh = await open(plain, 'r');
    for (let o = 0; o < DATA; o += CHUNK) {
      const { bytesRead } = await fh.read(Buffer.allocUnsafe(CHUNK), 0, CHUNK, o);
      if (bytesRead !== CHUNK) throw new Error('short read from the plain file');
    }
    await fh.close();
    fileSeconds = Math.min(fileSeconds, (performance.now() - t) / 1000);

    t = performance.now();
    for (const d of digests) if (!(await cache.get(d))) throw new Error('warm cache missed');
    cacheSeconds = Math.min(cacheSeconds, (performance.now() - t) / 1000);
  }
  emit({ bench: 'cache.warm_read', value: DATA / 1e6 / cacheSeconds, unit: 'MB/s', baseline: DATA / 1e6 / fileSeconds, target: 'ratio >= 0.7' });
}

async function index1m(dir: string): Promise<void> {
  // 16-byte files under random names: the index never reads them, so contents need not match.
  for (const p of prefixes) mkdirSync(join(dir, p), { recursive: true });
  const body = Buffer.alloc(16);
  for (let i = 0; i < INDEX_ENTRIES; i++) {
    const hex = randomBytes(32).toString('hex');
    writeFileSync(`${dir}/${hex.slice(0, 2)}/${hex}`, body);
  }
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  // No snapshot yet: the open a crash leaves, a scan of every file.
  gc();
  const before = process.memoryUsage().heapUsed;
  let t = performance.now();
  const scanned = await ChunkCache.open({ dir, maxBytes: 1024 * MiB });
  const rescanSeconds = (performance.now() - t) / 1000;
  gc();
  const heapMiB = (process.memoryUsage().heapUsed - before) / MiB;
  if (scanned.stats().entries !== INDEX_ENTRIES) throw new Error(`index has ${scanned.stats().entries} entries`);
  await scanned.close();

  // A clean restart: the snapshot written by close().
  t = performance.now();
  const reopened = await ChunkCache.open({ dir, maxBytes: 1024 * MiB });
  const reopenSeconds = (performance.now() - t) / 1000;
  if (reopened.stats().entries !== INDEX_ENTRIES) throw new Error(`reopened index has ${reopened.stats().entries} entries`);
  emit({ bench: 'cache.index_1m_heap', value: heapMiB, unit: 'MiB', baseline: null, target: 'printed' });
  emit({ bench: 'cache.index_1m_reopen', value: reopenSeconds, unit: 's', baseline: null, target: 'reopen in seconds' });
  emit({ bench: 'cache.index_1m_rescan', value: rescanSeconds, unit: 's', baseline: null, target: 'printed (open after a crash)' });
}
