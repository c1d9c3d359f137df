import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { createLogger } from '../src/log/logger.js';
import { isSgError } from '../src/errors.js';

let scratch: string;
let dirs = 0;
before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

const newDir = (): string => join(scratch, `cache-${dirs++}`);
const digestOf = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const pathOf = (dir: string, digest: string): string => join(dir, digest.slice(7, 9), digest.slice(7));

/** Sum of the sizes of all cache files on disk (not temp files). */
function bytesOnDisk(dir: string): number {
  let total = 0;
  for (const p of readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(p)) continue;
    for (const f of readdirSync(join(dir, p))) total += statSync(join(dir, p, f)).size;
  }
  return total;
}

test('put then get returns the bytes; a miss is undefined; stats count both', async () => {
  const dir = newDir();
  const cache = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  const chunk = randomBytes(5000);
  const d = digestOf(chunk);
  assert.equal(await cache.get(d), undefined);
  assert.equal(await cache.put(d, chunk), true);
  assert.deepEqual(Buffer.from((await cache.get(d))!), chunk);
  assert.ok(existsSync(pathOf(dir, d)), 'stored at <dir>/<hex[0:2]>/<hex>');
  const empty = new Uint8Array(0);
  await cache.put(digestOf(empty), empty);
  assert.equal((await cache.get(digestOf(empty)))?.length, 0);
  const s = cache.stats();
  assert.equal(s.hits, 2);
  assert.equal(s.misses, 1);
  assert.equal(s.entries, 2);
  assert.equal(s.bytes, 5001, 'an empty chunk still counts one byte');
});

test('put checks the bytes against the digest; malformed digests are INVALID_ARGUMENT', async () => {
  const cache = await ChunkCache.open({ dir: newDir(), maxBytes: 1 << 20 });
  const chunk = randomBytes(100);
  await assert.rejects(cache.put(digestOf(randomBytes(100)), chunk), (e: unknown) => isSgError(e, 'CORRUPT'));
  assert.equal(cache.stats().entries, 0);
  await assert.rejects(cache.put('sha512:abc', chunk), (e: unknown) => isSgError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(cache.get(digestOf(chunk).toUpperCase()), (e: unknown) => isSgError(e, 'INVALID_ARGUMENT'));
});

test('getOrFetch: concurrent misses of one digest fetch once; a wrong fetch result is CORRUPT and not stored', async () => {
  const cache = await ChunkCache.open({ dir: newDir(), maxBytes: 1 << 20 });
  const chunk = randomBytes(10_000);
  const d = digestOf(chunk);
  let fetches = 0;
  const fetch = async (): Promise<Uint8Array> => {
    fetches++;
    await new Promise((r) => setTimeout(r, 50));
    return chunk;
  };
  const results = await Promise.all(Array.from({ length: 10 }, () => cache.getOrFetch(d, fetch)));
  assert.equal(fetches, 1);
  for (const r of results) assert.deepEqual(Buffer.from(r), chunk);
  await cache.getOrFetch(d, fetch);
  assert.equal(fetches, 1, 'then a hit');
  const other = randomBytes(100);
  await assert.rejects(cache.getOrFetch(digestOf(other), async () => randomBytes(100)), (e: unknown) => isSgError(e, 'CORRUPT'));
  assert.equal(cache.has(digestOf(other)), false);
});

test('eviction order: least recently used first, and evicted files are deleted', async () => {
  const dir = newDir();
  const cache = await ChunkCache.open({ dir, maxBytes: 3000 });
  const [a, b, c, d] = Array.from({ length: 4 }, () => randomBytes(1000));
  const [da, db, dc, dd] = [a!, b!, c!, d!].map(digestOf) as [string, string, string, string];
  await cache.put(da, a!);
  await cache.put(db, b!);
  await cache.put(dc, c!);
  assert.ok(await cache.get(da), 'a becomes most recent');
  await cache.put(dd, d!);
  assert.equal(cache.has(db), false, 'b was least recently used');
  assert.equal(existsSync(pathOf(dir, db)), false);
  await cache.put(db, b!);
  assert.equal(cache.has(dc), false, 'then c');
  assert.deepEqual([da, db, dd].map((x) => cache.has(x)), [true, true, true]);
  assert.equal(cache.stats().evictions, 2);
  const huge = randomBytes(3001);
  assert.equal(await cache.put(digestOf(huge), huge), false, 'a chunk larger than the bound is not stored');
});

test('the bound holds on disk under a workload much larger than the bound', async () => {
  const dir = newDir();
  const maxBytes = 1 << 20;
  const cache = await ChunkCache.open({ dir, maxBytes });
  const chunks = Array.from({ length: 150 }, () => randomBytes(randomInt(1000, 50_000)));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  assert.ok(total > 3 * maxBytes);
  for (let i = 0; i < 600; i++) {
    const c = chunks[randomInt(chunks.length)]!;
    const got = await cache.getOrFetch(digestOf(c), async () => c);
    assert.ok(Buffer.from(got).equals(c));
    if (i % 50 === 0) assert.ok(bytesOnDisk(dir) <= maxBytes, `on disk ${bytesOnDisk(dir)} > ${maxBytes}`);
  }
  const s = cache.stats();
  assert.ok(s.bytes <= maxBytes);
  assert.equal(bytesOnDisk(dir), s.bytes);
  assert.ok(s.evictions > 0 && s.hits > 0 && s.misses > 0);
});

test('clean restart: hits and LRU order come back from the index snapshot', async () => {
  const dir = newDir();
  const first = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  const chunks = Array.from({ length: 20 }, () => randomBytes(2000));
  for (const c of chunks) await first.put(digestOf(c), c);
  await first.get(digestOf(chunks[0]!));
  await first.close();
  assert.ok(existsSync(join(dir, 'index.snapshot')));
  const late = randomBytes(10);
  assert.equal(await first.put(digestOf(late), late), false, 'nothing is stored after close');

  // Room for two: the two most recently used survive, chunk 0 (read after the puts) and 19.
  const second = await ChunkCache.open({ dir, maxBytes: 4000 });
  assert.equal(existsSync(join(dir, 'index.snapshot')), false, 'the snapshot is consumed at open');
  assert.deepEqual(
    chunks.map((c) => second.has(digestOf(c))),
    chunks.map((_, i) => i === 0 || i === 19),
  );
  for (const i of [0, 19]) assert.deepEqual(Buffer.from((await second.get(digestOf(chunks[i]!)))!), chunks[i]);
  assert.equal(second.stats().hits, 2);
  assert.equal(bytesOnDisk(dir), 4000, 'entries over the bound were deleted at open');

  // A file deleted while the cache was closed is a miss, not an error.
  await second.close();
  rmSync(pathOf(dir, digestOf(chunks[19]!)));
  const third = await ChunkCache.open({ dir, maxBytes: 4000 });
  assert.equal(await third.get(digestOf(chunks[19]!)), undefined);
  assert.equal(third.stats().entries, 1);
});

test('restart after a crash (no snapshot, or a torn one): the directory scan finds every entry, oldest by file time', async () => {
  const dir = newDir();
  const first = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  const chunks = Array.from({ length: 20 }, () => randomBytes(2000));
  for (const c of chunks) await first.put(digestOf(c), c);
  // No close(): as after SIGKILL. A torn snapshot from some earlier close must not be trusted.
  writeFileSync(join(dir, 'index.snapshot'), 'SGCACHE1 torn');
  const second = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.equal(second.stats().entries, 20);
  for (const c of chunks) assert.deepEqual(Buffer.from((await second.get(digestOf(c)))!), c);
  assert.equal(second.stats().hits, 20);

  const now = Date.now() / 1000;
  chunks.forEach((c, i) => utimesSync(pathOf(dir, digestOf(c)), now - 1000 + i, now - 1000 + i));
  utimesSync(pathOf(dir, digestOf(chunks[0]!)), now, now);
  const third = await ChunkCache.open({ dir, maxBytes: 4000 });
  assert.deepEqual(
    chunks.map((c) => third.has(digestOf(c))),
    chunks.map((_, i) => i === 0 || i === 19),
  );
  assert.equal(bytesOnDisk(dir), 4000);
});

test('a corrupted or torn cache file is detected on first read after reopen, deleted, and fetched again', async () => {
  const dir = newDir();
  const lines: string[] = [];
  const first = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  const good = randomBytes(4000);
  const flipped = randomBytes(4000);
  const torn = randomBytes(4000);
  for (const c of [good, flipped, torn]) await first.put(digestOf(c), c);
  const flippedBytes = Buffer.from(flipped);
  flippedBytes[1234]! ^= 0x40;
  writeFileSync(pathOf(dir, digestOf(flipped)), flippedBytes);
  writeFileSync(pathOf(dir, digestOf(torn)), torn.subarray(0, 1500));

  const cache = await ChunkCache.open({ dir, maxBytes: 1 << 20, log: createLogger('warn', { write: (l: string) => lines.push(l) }) });
  let fetches = 0;
  const again = await cache.getOrFetch(digestOf(flipped), async () => {
    fetches++;
    return flipped;
  });
  assert.deepEqual(Buffer.from(again), flipped);
  assert.equal(fetches, 1, 'the damaged entry was a miss');
  assert.deepEqual(readFileSync(pathOf(dir, digestOf(flipped))), flipped, 'and was stored again');
  assert.equal(await cache.get(digestOf(torn)), undefined);
  assert.equal(existsSync(pathOf(dir, digestOf(torn))), false, 'the torn file is gone');
  assert.deepEqual(Buffer.from((await cache.get(digestOf(good)))!), good);
  assert.equal(cache.stats().corrupt, 2);
  assert.equal(lines.filter((l) => l.includes('does not match its digest')).length, 2);
});

test('temp files from a crashed write and stray names are removed at open', async () => {
  const dir = newDir();
  mkdirSync(join(dir, 'ab'), { recursive: true });
  writeFileSync(join(dir, 'ab', `${'ab'.repeat(32)}.7.tmp`), 'half a chunk');
  writeFileSync(join(dir, 'ab', 'not-a-digest'), 'x');
  writeFileSync(join(dir, 'ab', 'cd'.repeat(32)), 'misplaced');
  const cache = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(readdirSync(join(dir, 'ab')), []);
  assert.equal(cache.stats().entries, 0);
});

test('a full disk stops storing with one warning while reads keep working; default bound is 25% of free space', async (t) => {
  const dir = join(scratch, 'tiny-fs');
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    t.skip('needs root to mount a 1 MiB tmpfs');
    return;
  }
  const defaulted = await ChunkCache.open({ dir: join(dir, 'defaulted') });
  assert.ok(defaulted.maxBytes <= (1 << 20) / 4 && defaulted.maxBytes > 200_000, `default bound ${defaulted.maxBytes}`);

  const lines: string[] = [];
  const cache = await ChunkCache.open({ dir: join(dir, 'c'), maxBytes: 64 << 20, log: createLogger('warn', { write: (l: string) => lines.push(l) }) });
  const chunks = Array.from({ length: 12 }, () => randomBytes(200_000));
  for (const c of chunks) assert.deepEqual(Buffer.from(await cache.getOrFetch(digestOf(c), async () => c)), c);
  const s = cache.stats();
  assert.ok(s.writeErrors >= 1, 'some writes hit ENOSPC');
  assert.ok(s.entries >= 1 && s.entries < 12);
  assert.equal(lines.filter((l) => l.includes('disk is full')).length, 1, 'one warning');
  assert.ok(lines[0]!.includes('ENOSPC'));
  const temps = readdirSync(join(dir, 'c'), { recursive: true }).filter((n) => String(n).endsWith('.tmp'));
  assert.deepEqual(temps, [], 'failed temp files are removed');
  for (const c of chunks.slice(0, s.entries)) assert.ok(await cache.get(digestOf(c)), 'stored chunks are still hits');
});

test('putVerified stores bytes the caller verified; they survive a reopen and are re-checked there', async () => {
  const dir = newDir();
  const bytes = randomBytes(5000);
  const d = digestOf(bytes);
  const c = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.equal(await c.putVerified(d, bytes), true);
  assert.deepEqual(Buffer.from((await c.get(d))!), bytes);
  await c.close();
  const again = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(Buffer.from((await again.get(d))!), bytes);
  await again.close();
});

test('getRange: a piece of a verified chunk read from disk; an entry from before a reopen is checked whole first', async () => {
  const dir = newDir();
  let cache = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  const chunk = randomBytes(100_000);
  const d = digestOf(chunk);
  assert.equal(await cache.getRange(d, 0, 10), undefined, 'a miss');
  await cache.put(d, chunk);
  assert.deepEqual(Buffer.from((await cache.getRange(d, 4096, 4096))!), chunk.subarray(4096, 8192));
  assert.deepEqual(Buffer.from((await cache.getRange(d, 99_990, 4096))!), chunk.subarray(99_990), 'clamped at the end');
  assert.equal((await cache.getRange(d, 200_000, 10))?.length, 0);
  await cache.close();

  // Damage the file behind the cache's back: after a reopen the first read checks it whole.
  const damaged = Buffer.from(chunk);
  damaged[50_000] = damaged[50_000]! ^ 0xff;
  writeFileSync(pathOf(dir, d), damaged);
  cache = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.equal(await cache.getRange(d, 0, 4096), undefined, 'never a piece of a damaged chunk');
  assert.equal(cache.stats().corrupt, 1);
  assert.equal(cache.has(d), false);
  await cache.put(d, chunk);
  await cache.close();
  cache = await ChunkCache.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(Buffer.from((await cache.getRange(d, 10, 20))!), chunk.subarray(10, 30));
  // A file shortened behind our back after verification: a miss, and the entry is dropped.
  writeFileSync(pathOf(dir, d), chunk.subarray(0, 1000));
  assert.equal(await cache.getRange(d, 50_000, 4096), undefined);
  assert.equal(cache.has(d), false);
  await cache.close();
});

test('assemble: entries concatenated under the digest of the whole, checked; a wrong digest or a missing part stores nothing', async () => {
  const dir = newDir();
  const cache = await ChunkCache.open({ dir, maxBytes: 1 << 24 });
  const parts = [randomBytes(70_000), randomBytes(70_000), randomBytes(1234)];
  for (const p of parts) await cache.put(digestOf(p), p);
  const whole = Buffer.concat(parts);
  assert.equal(await cache.assemble(digestOf(whole), parts.map(digestOf)), true);
  assert.deepEqual(readFileSync(pathOf(dir, digestOf(whole))), whole);
  assert.equal(await cache.verifiedPath(digestOf(whole)), pathOf(dir, digestOf(whole)));

  // A TOC that names another file's digest for these chunks must not plant them there.
  const other = digestOf(randomBytes(10));
  assert.equal(await cache.assemble(other, parts.map(digestOf)), false);
  assert.equal(cache.has(other), false);
  assert.equal(existsSync(pathOf(dir, other)), false);
  const missing = [digestOf(parts[0]!), digestOf(randomBytes(5))];
  assert.equal(await cache.assemble(digestOf(Buffer.concat([parts[0]!, randomBytes(5)])), missing), false);
  assert.deepEqual(
    readdirSync(join(dir, other.slice(7, 9))).filter((n) => n.endsWith('.tmp')),
    [],
    'no temp file left behind',
  );
  await cache.close();
});

test('verifiedPath: an entry from before a reopen is checked first, and a damaged one is deleted, not handed out', async () => {
  const dir = newDir();
  let cache = await ChunkCache.open({ dir, maxBytes: 1 << 24 });
  const good = randomBytes(50_000);
  const bad = randomBytes(50_000);
  await cache.put(digestOf(good), good);
  await cache.put(digestOf(bad), bad);
  await cache.close();
  const damaged = Buffer.from(bad);
  damaged[100] = damaged[100]! ^ 1;
  writeFileSync(pathOf(dir, digestOf(bad)), damaged);
  cache = await ChunkCache.open({ dir, maxBytes: 1 << 24 });
  assert.equal(await cache.verifiedPath(digestOf(good)), pathOf(dir, digestOf(good)));
  assert.equal(await cache.verifiedPath(digestOf(bad)), undefined);
  assert.equal(existsSync(pathOf(dir, digestOf(bad))), false);
  assert.equal(cache.stats().corrupt, 1);
  await cache.close();
});
