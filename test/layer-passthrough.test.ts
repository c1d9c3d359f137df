/**
 * FUSE passthrough through the kernel: layers from the real Kubo node mounted with
 * `passthrough`, read with ordinary async fs calls. Which opens were passed through is
 * read from the mount's own debug log (one `passthrough` record per such open, one `read`
 * record per READ it served), captured in memory.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale, unmountUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { estargzOf } from './harness/layer-blobs.js';
import { sleep } from './harness/proc.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsBlobSource } from '../src/source/ipfs-source.js';
import { BackgroundScheduler } from '../src/layer/background-scheduler.js';
import { openLayer, type OpenedLayer } from '../src/layer/open-layer.js';
import { mountLayer, type Mounted } from '../src/fuse/mount.js';
import { createLogger, type Logger } from '../src/log/logger.js';

const execFileAsync = promisify(execFile);
const quiet = createLogger('warn');
const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const MiB = 1 << 20;

let scratch: string;
let kubo: KuboNode;
let scheduler: BackgroundScheduler;
let client: IpfsClient;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  scheduler = new BackgroundScheduler(2, 0);
  client = new IpfsClient({ endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }), requestTimeoutMs: 3000, fetchTimeoutMs: 4000, retries: 1, log: quiet });
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  scheduler?.close();
  await kubo?.stop();
  unmountUnder(scratch);
  destroyScratch(scratch);
});

/** A logger that keeps every record; `ops(path)` counts READs served and passthrough opens. */
function recordingLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const sink = { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) };
  return { log: createLogger('debug', sink as unknown as NodeJS.WritableStream), records };
}

const small = randomBytes(100_000);
const big = randomBytes(3 * MiB + 12_345);

async function mountFiles(name: string, cacheDir = join(scratch, `cache-${name}`)) {
  const { blob } = await estargzOf(
    [
      { name: 'small.bin', data: small },
      { name: 'big.bin', data: big },
      { name: 'other.bin', data: Buffer.concat([big.subarray(0, MiB), small]) },
    ],
    MiB,
  );
  const cid = kubo.add(blob);
  const cache = await ChunkCache.open({ dir: cacheDir, maxBytes: 1 << 30 });
  const { log, records } = recordingLogger();
  const opened: OpenedLayer = await openLayer(
    new IpfsBlobSource(cid, client),
    { digest: sha(blob), tocDigest: undefined, prefetchSize: 0, noPrefetch: true, noBackgroundFetch: true, opaqueXattr: 'trusted' },
    { cache, scheduler, log },
  );
  const dir = join(scratch, 'mnt', name);
  const m: Mounted = await mountLayer(opened.layer, dir, { attrTimeoutSec: 1, entryTimeoutSec: 1, passthrough: true, log });
  cleanups.push(async () => {
    opened.close();
    await m.unmount();
    await cache.close();
  });
  const count = (what: 'read' | 'passthrough', file: string) =>
    records.filter((r) => r.msg === 'fuse op' && r.op === what && r.path === `/${file}`).length;
  return { dir, cache, records, count };
}

async function readWhole(path: string): Promise<Buffer> {
  return readFile(path);
}

/** Opens and reads `file` until an open is passed through (the whole file may be assembling). */
async function untilPassedThrough(count: (what: 'read' | 'passthrough', file: string) => number, path: string, file: string): Promise<Buffer> {
  for (let i = 0; i < 100; i++) {
    const before = count('passthrough', file);
    const bytes = await readWhole(path);
    if (count('passthrough', file) > before) return bytes;
    await sleep(100);
  }
  assert.fail(`${file} was never opened with passthrough`);
}

describe('FUSE passthrough', () => {
  it('a one-chunk file read once is then opened on its cache file, and the kernel reads it without a READ to us', async () => {
    const { dir, cache, count } = await mountFiles('one-chunk');
    assert.deepEqual(await readWhole(join(dir, 'small.bin')), small);
    assert.ok(count('read', 'small.bin') > 0, 'the first open is served by READs (nothing cached yet)');
    assert.equal(count('passthrough', 'small.bin'), 0);
    await cache.writesDone();
    const reads = count('read', 'small.bin');
    assert.deepEqual(await untilPassedThrough(count, join(dir, 'small.bin'), 'small.bin'), small);
    // A fresh view of the bytes: through the backing file, not the pages of the first open.
    await execFileAsync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const fh = await open(join(dir, 'small.bin'));
    try {
      const piece = Buffer.alloc(5000);
      const { bytesRead } = await fh.read(piece, 0, piece.length, 77_777);
      assert.equal(bytesRead, 5000);
      assert.deepEqual(piece, small.subarray(77_777, 82_777));
    } finally {
      await fh.close();
    }
    assert.equal(count('read', 'small.bin'), reads, 'no READ reached the mount once the file was passed through');
  });

  it('a file of several chunks is assembled once all its chunks are cached, checked, and then passed through', async () => {
    const { dir, cache, count } = await mountFiles('assembled');
    assert.deepEqual(await readWhole(join(dir, 'big.bin')), big);
    assert.ok(count('read', 'big.bin') > 0);
    assert.deepEqual(await untilPassedThrough(count, join(dir, 'big.bin'), 'big.bin'), big);
    assert.ok(cache.has(sha(big)), 'the whole file is a cache entry named by its digest');
    const fh = await open(join(dir, 'big.bin'));
    try {
      // Across the chunk boundaries, and the short tail.
      for (const at of [MiB - 10, 2 * MiB - 1, 3 * MiB + 12_000]) {
        const piece = Buffer.alloc(345);
        const { bytesRead } = await fh.read(piece, 0, piece.length, at);
        assert.equal(bytesRead, Math.min(345, big.length - at));
        assert.deepEqual(piece.subarray(0, bytesRead), big.subarray(at, at + bytesRead));
      }
    } finally {
      await fh.close();
    }
  });

  it('a file stays in one mode while it is open: opens during a READ-served open are served by READs too, then the next is passed through', async () => {
    const { dir, cache, count } = await mountFiles('modes');
    const path = join(dir, 'small.bin');
    const first = await open(path);
    try {
      const buf = Buffer.alloc(small.length);
      assert.equal((await first.read(buf, 0, buf.length, 0)).bytesRead, small.length);
      await cache.writesDone();
      // Cached now, but the first open is still served by READs: the kernel would refuse
      // (EIO) a passthrough open of the same inode meanwhile.
      assert.deepEqual(await readWhole(path), small);
      assert.equal(count('passthrough', 'small.bin'), 0);
    } finally {
      await first.close();
    }
    assert.deepEqual(await untilPassedThrough(count, path, 'small.bin'), small);
    // And the other way round: opens during a passthrough open follow it (same backing file).
    const held = await open(path);
    try {
      const opened = count('passthrough', 'small.bin');
      assert.deepEqual(await readWhole(path), small);
      assert.deepEqual(await readWhole(path), small);
      assert.equal(count('passthrough', 'small.bin'), opened + 2);
    } finally {
      await held.close();
    }
  });

  it('a passed-through layer works as an overlayfs lower dir (the stack stays within the kernel limit)', async () => {
    const { dir, count } = await mountFiles('overlay');
    assert.deepEqual(await readWhole(join(dir, 'small.bin')), small);
    await untilPassedThrough(count, join(dir, 'small.bin'), 'small.bin');
    const base = join(scratch, 'ovl');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(base, d), { recursive: true });
    await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir},upperdir=${base}/upper,workdir=${base}/work`, join(base, 'merged')]);
    cleanups.push(async () => void (await execFileAsync('umount', [join(base, 'merged')])));
    const before = count('passthrough', 'small.bin');
    assert.deepEqual(await readWhole(join(base, 'merged', 'small.bin')), small);
    assert.equal(count('passthrough', 'small.bin'), before + 1, 'the open through overlayfs was passed through');
    assert.deepEqual(await readWhole(join(base, 'merged', 'big.bin')), big);
  });

  it('a cache on overlayfs cannot back passthrough (ELOOP): the mount says so once and serves READs, bytes right', async () => {
    const base = join(scratch, 'ovl-cache');
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(base, d), { recursive: true });
    await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`, join(base, 'merged')]);
    cleanups.push(async () => void (await execFileAsync('umount', ['-l', join(base, 'merged')])));
    const { dir, cache, count, records } = await mountFiles('ovl-cache', join(base, 'merged', 'cache'));
    assert.deepEqual(await readWhole(join(dir, 'small.bin')), small);
    await cache.writesDone();
    for (let i = 0; i < 3; i++) assert.deepEqual(await readWhole(join(dir, 'small.bin')), small);
    assert.deepEqual(await readWhole(join(dir, 'other.bin')), Buffer.concat([big.subarray(0, MiB), small]));
    assert.equal(count('passthrough', 'small.bin'), 0);
    const warnings = records.filter((r) => r.level === 'warn' && String(r.msg).includes('passthrough unavailable'));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(JSON.stringify(warnings[0]), /ELOOP/);
  });
});
