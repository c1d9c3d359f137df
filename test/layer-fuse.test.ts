/**
 * The layer filesystem through the kernel: corpus blobs and blobs written here are added
 * to a real Kubo node, mounted with FUSE, and checked with ordinary async fs calls (never
 * synchronous ones: this process serves the mount).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, mkdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { lstat, readFile, readlink, readdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { estargzOf, blobWithToc } from './harness/layer-blobs.js';
import { waitFor } from './harness/proc.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { openEstargz } from '../src/estargz/index.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsBlobSource } from '../src/source/ipfs-source.js';
import { BackgroundScheduler } from '../src/layer/background-scheduler.js';
import { openLayer, type OpenedLayer } from '../src/layer/open-layer.js';
import { mountLayer, type Mounted } from '../src/fuse/mount.js';
import { createLogger } from '../src/log/logger.js';
import { isSgError } from '../src/errors.js';

const execFileAsync = promisify(execFile);
const corpusDir = new URL('../../../shared/testdata/estargz/', import.meta.url).pathname;
const corpus = JSON.parse(readFileSync(join(corpusDir, 'corpus.json'), 'utf8')) as {
  blobs: { name: string; blob: string; expected: string; tocDigest: string; listExitCode: number }[];
};
const log = createLogger('warn');
const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

let scratch: string;
let kubo: KuboNode;
let cache: ChunkCache;
let scheduler: BackgroundScheduler;
let client: IpfsClient;
const mounted: { m: Mounted; o: OpenedLayer }[] = [];

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  cache = await ChunkCache.open({ dir: join(scratch, 'cache'), maxBytes: 1 << 30 });
  scheduler = new BackgroundScheduler(2, 0);
  client = new IpfsClient({ endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }), requestTimeoutMs: 3000, fetchTimeoutMs: 4000, retries: 1, log });
});
after(async () => {
  for (const { m, o } of mounted) {
    o.close();
    await m.unmount();
  }
  scheduler?.close();
  await cache?.close();
  await kubo?.stop();
  destroyScratch(scratch);
});

async function mountBlob(name: string, blob: Uint8Array, tocDigest: string | undefined, o: { noBackgroundFetch?: boolean; cache?: ChunkCache; fetchAlignBytes?: number } = {}) {
  const cid = kubo.add(blob);
  const opened = await openLayer(
    new IpfsBlobSource(cid, client),
    { digest: sha(blob), tocDigest, prefetchSize: 0, noPrefetch: false, noBackgroundFetch: o.noBackgroundFetch ?? true, opaqueXattr: 'trusted', fetchAlignBytes: o.fetchAlignBytes },
    { cache: o.cache ?? cache, scheduler, log },
  );
  const dir = join(scratch, 'mnt', name);
  const m = await mountLayer(opened.layer, dir, { attrTimeoutSec: 1, entryTimeoutSec: 1, log });
  const entry = { m, o: opened };
  mounted.push(entry);
  const unmount = async () => {
    mounted.splice(mounted.indexOf(entry), 1);
    opened.close();
    await m.unmount();
  };
  return { dir, opened, cid, digest: sha(blob), unmount };
}

async function xattrsOf(path: string): Promise<Record<string, string>> {
  const py = 'import os,sys,json,base64;p=sys.argv[1];print(json.dumps({n: base64.b64encode(os.getxattr(p,n,follow_symlinks=False)).decode() for n in os.listxattr(p,follow_symlinks=False)}))';
  const { stdout } = await execFileAsync('python3', ['-c', py, path]);
  return JSON.parse(stdout) as Record<string, string>;
}

interface Expected {
  kind: string;
  name: string;
  type: string;
  size: number;
  mode: string;
  uid: number;
  gid: number;
  modtime: string;
  linkName: string;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, string>;
  numLink: number;
  sha256: string | null;
}

const TYPE_BITS: Record<string, number> = { dir: 0o040000, reg: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

describe('corpus blobs through FUSE', () => {
  for (const b of corpus.blobs.filter((x) => x.listExitCode === 0)) {
    it(`${b.name}: every entry's bytes, mode, owner, times, xattrs, links and devices match the reference listing`, async () => {
      const blob = readFileSync(join(corpusDir, b.blob));
      const { dir } = await mountBlob(b.name, blob, b.tocDigest);
      const lines = readFileSync(join(corpusDir, b.expected), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Expected);
      const entries = lines.filter((l) => l.kind === 'entry');
      assert.ok(entries.length > 0);
      const byName = new Map(entries.map((e) => [e.name, e]));
      for (const e of entries) {
        const path = join(dir, e.name);
        if (e.name === '.no.prefetch.landmark' || e.name === '.prefetch.landmark') {
          await assert.rejects(lstat(path), { code: 'ENOENT' }, 'landmarks are hidden');
          continue;
        }
        const base = e.name.slice(e.name.lastIndexOf('/') + 1);
        if (base.startsWith('.wh.')) {
          // Markers are hidden: `.wh.<x>` shows as a 0/0 char device `<x>`, the opaque marker as an xattr.
          await assert.rejects(lstat(path), { code: 'ENOENT' }, `${e.name} hidden`);
          const parent = join(dir, e.name.slice(0, e.name.length - base.length));
          if (base === '.wh..wh..opq') assert.equal((await xattrsOf(parent))['trusted.overlay.opaque'], 'eQ==');
          else if (!byName.has(e.name.slice(0, e.name.length - base.length) + base.slice(4))) {
            const wh = await lstat(join(parent, base.slice(4)));
            assert.ok(wh.isCharacterDevice() && wh.rdev === 0, `${e.name} → whiteout device`);
          }
          continue;
        }
        const st = await lstat(path);
        let target: Expected | undefined = e;
        while (target?.type === 'hardlink') target = byName.get(target.linkName.replace(/^\.?\/+/, '').replace(/\/$/, ''));
        assert.ok(target, `hardlink target of ${e.name}`);
        const what = `${b.name}:${e.name}`;
        assert.equal(st.mode, TYPE_BITS[target.type]! | parseInt(target.mode, 8), `${what} mode`);
        assert.equal(st.uid, target.uid, `${what} uid`);
        assert.equal(st.gid, target.gid, `${what} gid`);
        assert.equal(Math.floor(st.mtimeMs / 1000), target.modtime ? Date.parse(target.modtime) / 1000 : 0, `${what} mtime`);
        assert.equal(st.nlink, Math.max(1, e.numLink), `${what} nlink`);
        if (target.type === 'reg') {
          assert.equal(st.size, target.size, `${what} size`);
          assert.equal(sha(await readFile(path)), e.sha256, `${what} content`);
        }
        if (target.type === 'symlink') {
          assert.equal(await readlink(path), target.linkName, `${what} link`);
          assert.equal(st.size, Buffer.byteLength(target.linkName));
        }
        if (target.type === 'char' || target.type === 'block') {
          assert.equal((st.rdev >> 8) & 0xfff, target.devMajor, `${what} major`);
          assert.equal((st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00), target.devMinor, `${what} minor`);
        }
        if (e.type === 'hardlink') assert.equal(st.ino, (await lstat(join(dir, e.linkName))).ino, `${what} shares the target's inode`);
        if (Object.keys(target.xattrs).length > 0) assert.deepEqual(await xattrsOf(path), target.xattrs, `${what} xattrs`);
      }
      const state = (await readdir(join(dir, '.stargz-snapshotter')))[0]!;
      const json = JSON.parse(await readFile(join(dir, '.stargz-snapshotter', state), 'utf8')) as { digest: string; size: number };
      assert.equal(json.size, blob.length);
      assert.equal(state, `${json.digest}.json`);
      assert.ok(!(await readdir(dir)).includes('.stargz-snapshotter'), 'state dir hidden from listings');
    });
  }
});

describe('whiteouts and opaque directories under a real overlay mount', () => {
  it('a deleted file is absent and an opaque dir hides the lower layer', async () => {
    const { blob, result } = await estargzOf([
      { name: 'dir/', type: 'directory' },
      { name: 'dir/upper.txt', data: Buffer.from('upper') },
      { name: '.wh.gone.txt' },
      { name: 'opq/', type: 'directory' },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/new.txt', data: Buffer.from('new') },
    ]);
    const { dir: fuseDir } = await mountBlob('whiteouts', blob, result.tocDigest);
    const gone = await lstat(join(fuseDir, 'gone.txt'));
    assert.ok(gone.isCharacterDevice() && gone.rdev === 0, 'whiteout is a 0/0 char device');
    assert.deepEqual((await readdir(fuseDir)).sort(), ['dir', 'gone.txt', 'opq']);
    assert.deepEqual(await xattrsOf(join(fuseDir, 'opq')), { 'trusted.overlay.opaque': Buffer.from('y').toString('base64') });

    const base = join(scratch, 'base');
    mkdirSync(join(base, 'dir'), { recursive: true });
    mkdirSync(join(base, 'opq'));
    writeFileSync(join(base, 'gone.txt'), 'old');
    writeFileSync(join(base, 'dir', 'base.txt'), 'base');
    writeFileSync(join(base, 'opq', 'old.txt'), 'hidden');
    const merged = join(scratch, 'merged');
    mkdirSync(merged);
    await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${fuseDir}:${base}`, merged]);
    try {
      await assert.rejects(lstat(join(merged, 'gone.txt')), { code: 'ENOENT' });
      assert.deepEqual((await readdir(join(merged, 'opq'))).sort(), ['new.txt']);
      assert.deepEqual((await readdir(join(merged, 'dir'))).sort(), ['base.txt', 'upper.txt']);
      assert.equal(await readFile(join(merged, 'dir', 'upper.txt'), 'utf8'), 'upper');
    } finally {
      await execFileAsync('umount', [merged]);
    }
  });
});

describe('faults', () => {
  it('a chunk that fails verification reads as EIO, is reported in the state file, and other files keep working', async () => {
    const b = corpus.blobs.find((x) => x.name === 'broken-chunk-flipped')!;
    const { dir, digest } = await mountBlob('flipped', readFileSync(join(corpusDir, b.blob)), b.tocDigest);
    const fh = await open(join(dir, 'opt/data'));
    try {
      const buf = Buffer.alloc(4096);
      await assert.rejects(fh.read(buf, 0, 4096, 8192), { code: 'EIO' });
      const ok = await fh.read(buf, 0, 4096, 0);
      assert.equal(ok.bytesRead, 4096, 'an intact chunk of the same file still reads');
    } finally {
      await fh.close();
    }
    const state = JSON.parse(await readFile(join(dir, '.stargz-snapshotter', `${digest}.json`), 'utf8')) as { error?: string };
    assert.match(state.error ?? '', /chunk digest mismatch/);
    assert.equal((await readFile(join(dir, 'etc/other.conf'))).length, 16);
  });

  it('Kubo stopped mid-read: EIO within the timeout, and reads succeed again once it is back', async () => {
    const data = randomBytes(48 << 20);
    const { blob, result } = await estargzOf([{ name: 'big.bin', data }], 1 << 20);
    const { dir } = await mountBlob('kubo-down', blob, result.tocDigest, { noBackgroundFetch: true });
    const fh = await open(join(dir, 'big.bin'));
    try {
      const first = Buffer.alloc(128 << 10);
      await fh.read(first, 0, first.length, 0);
      assert.ok(first.equals(data.subarray(0, first.length)));
      await kubo.stop();
      const started = Date.now();
      const buf = Buffer.alloc(128 << 10);
      await assert.rejects(fh.read(buf, 0, buf.length, 40 << 20), { code: 'EIO' });
      assert.ok(Date.now() - started < 15_000, `EIO after ${Date.now() - started} ms`);
      await kubo.start();
      const again = await fh.read(buf, 0, buf.length, 40 << 20);
      assert.equal(again.bytesRead, buf.length);
      assert.ok(buf.equals(data.subarray(40 << 20, (40 << 20) + buf.length)));
    } finally {
      await fh.close();
    }
  });

  it('200 concurrent readers of different files all get the right bytes', async () => {
    const files = Array.from({ length: 200 }, (_, i) => ({ name: `f/${i}.bin`, data: randomBytes(20_000 + i * 97) }));
    const { blob, result } = await estargzOf([{ name: 'f/', type: 'directory' }, ...files], 8192);
    const fresh = await ChunkCache.open({ dir: join(scratch, 'cache-200'), maxBytes: 1 << 30 });
    try {
      const { dir } = await mountBlob('concurrent', blob, result.tocDigest, { cache: fresh });
      // The readers run in another process: this one serves the mount, and 200 reads
      // parked in its own libuv pool would starve the cache I/O that answers them.
      const reader = `const fs=require('fs/promises'),c=require('crypto');Promise.all(process.argv.slice(1).map(p=>fs.readFile(p).then(b=>c.createHash('sha256').update(b).digest('hex')))).then(h=>console.log(JSON.stringify(h)))`;
      const { stdout } = await execFileAsync(process.execPath, ['-e', reader, ...files.map((f) => join(dir, f.name))], {
        env: { ...process.env, UV_THREADPOOL_SIZE: '128' },
        timeout: 60_000,
      });
      const got = JSON.parse(stdout) as string[];
      got.forEach((h, i) => assert.equal('sha256:' + h, sha(files[i]!.data), files[i]!.name));
    } finally {
      await fresh.close();
    }
  });

  it('reads served from the disk cache after a restart: damaged entries are fetched again, never served', async () => {
    // Chunks of 300,000 bytes: the kernel's page-aligned reads start and end inside chunks
    // and span several, so reads are assembled from pieces of several cache files.
    const data = randomBytes(6 << 20);
    const { blob, result } = await estargzOf([{ name: 'data.bin', data }], 300_000);
    const cacheDir = join(scratch, 'cache-restart');
    const first = await ChunkCache.open({ dir: cacheDir, maxBytes: 1 << 30 });
    const a = await mountBlob('restart-a', blob, result.tocDigest, { cache: first });
    assert.ok((await readFile(join(a.dir, 'data.bin'))).equals(data));
    await a.unmount();
    await first.close();

    const files = readdirSync(cacheDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && /^[0-9a-f]{64}$/.test(e.name));
    assert.equal(files.length, Math.ceil(data.length / 300_000), 'one cache file per chunk');
    const flipped = join(files[3]!.parentPath, files[3]!.name);
    const bytes = readFileSync(flipped);
    bytes[1000] = bytes[1000]! ^ 0xff;
    writeFileSync(flipped, bytes);
    truncateSync(join(files[7]!.parentPath, files[7]!.name), 1000);

    const reopened = await ChunkCache.open({ dir: cacheDir, maxBytes: 1 << 30 });
    try {
      const b = await mountBlob('restart-b', blob, result.tocDigest, { cache: reopened });
      const fh = await open(join(b.dir, 'data.bin'));
      try {
        // Unaligned pieces across chunk boundaries, then the whole file.
        for (const [at, len] of [[299_990, 20], [1_234_567, 700_001], [2_100_000 - 5, 10]] as const) {
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, at);
          assert.equal(bytesRead, len);
          assert.ok(buf.equals(data.subarray(at, at + len)), `bytes at ${at}`);
        }
      } finally {
        await fh.close();
      }
      assert.ok((await readFile(join(b.dir, 'data.bin'))).equals(data), 'the whole file');
      const st = reopened.stats();
      assert.equal(st.corrupt, 2, 'the flipped and the shortened entry were found and dropped');
      assert.ok(st.hits >= files.length - 2, `intact entries served from disk (hits ${st.hits})`);
      await b.unmount();
    } finally {
      await reopened.close();
    }
  });

  it('[blob] chunk_size: reading one small file brings its neighbours in the blob along, verified and cached', async () => {
    const files = Array.from({ length: 40 }, (_, i) => ({ name: `s/${String(i).padStart(2, '0')}`, data: randomBytes(3000 + i) }));
    const { blob, result } = await estargzOf([{ name: 's/', type: 'directory' }, ...files]);
    const layerCache = await ChunkCache.open({ dir: join(scratch, 'cache-align'), maxBytes: 1 << 30 });
    try {
      const m = await mountBlob('align', blob, result.tocDigest, { cache: layerCache, fetchAlignBytes: 50_000 });
      assert.ok((await readFile(join(m.dir, 's/05'))).equals(files[5]!.data));
      // Each file is one gzip member of ~3 KB: a 50,000-byte aligned fetch holds a dozen.
      await waitFor('neighbours stored', 5000, () => (layerCache.stats().entries >= 10 ? true : undefined));
      const requests = layerCache.stats().misses;
      for (const i of [4, 6, 7]) assert.ok((await readFile(join(m.dir, files[i]!.name))).equals(files[i]!.data), files[i]!.name);
      assert.equal(layerCache.stats().misses, requests, 'the neighbours were read from the cache, not fetched');
      for (const f of files) assert.ok((await readFile(join(m.dir, f.name))).equals(f.data), f.name);
      await m.unmount();
    } finally {
      await layerCache.close();
    }
  });

  it('a chunk cache smaller than the file: the bound holds on disk and every byte still reads right', async () => {
    const data = randomBytes(6 << 20);
    const { blob, result } = await estargzOf([{ name: 'data.bin', data }], 300_000);
    const cacheDir = join(scratch, 'cache-small');
    const bound = 1 << 20;
    const small = await ChunkCache.open({ dir: cacheDir, maxBytes: bound });
    try {
      const m = await mountBlob('small-cache', blob, result.tocDigest, { cache: small });
      assert.ok((await readFile(join(m.dir, 'data.bin'))).equals(data));
      const fh = await open(join(m.dir, 'data.bin'));
      try {
        const buf = Buffer.alloc(5000);
        await fh.read(buf, 0, buf.length, 123_456);
        assert.ok(buf.equals(data.subarray(123_456, 128_456)), 'an evicted chunk reads right again');
      } finally {
        await fh.close();
      }
      await m.unmount();
      const st = small.stats();
      assert.ok(st.evictions >= 15, `evictions ${st.evictions}`);
      assert.ok(st.bytes <= bound, `index holds ${st.bytes} bytes`);
      const onDisk = readdirSync(cacheDir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && /^[0-9a-f]{64}$/.test(e.name))
        .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);
      assert.ok(onDisk <= bound, `${onDisk} bytes of chunks on disk, bound ${bound}`);
    } finally {
      await small.close();
    }
  });

  it('a hostile TOC is refused before anything is mounted', async () => {
    const { blob, tocDigest } = blobWithToc({ version: 1, entries: [{ name: '../../etc/evil', type: 'reg', size: 0, mode: 420 }] });
    const cid = kubo.add(blob);
    await assert.rejects(
      openLayer(new IpfsBlobSource(cid, client), { digest: sha(blob), tocDigest, prefetchSize: 0, noPrefetch: true, noBackgroundFetch: true, opaqueXattr: 'trusted' }, { cache, scheduler, log }),
      (err: unknown) => isSgError(err, 'HOSTILE_TOC'),
    );
    assert.deepEqual(mountsUnder(join(scratch, 'mnt', 'hostile')), []);
  });

  it('a wrong TOC digest is refused, also for a layer whose TOC was fetched ahead of its mount', async () => {
    const b = corpus.blobs.find((x) => x.name === 'tree-cs4096')!;
    const cid = kubo.add(readFileSync(join(corpusDir, b.blob)));
    const source = new IpfsBlobSource(cid, client);
    const opts = { digest: 'sha256:x', tocDigest: 'sha256:' + '0'.repeat(64), prefetchSize: 0, noPrefetch: true, noBackgroundFetch: true, opaqueXattr: 'trusted' as const };
    await assert.rejects(openLayer(source, opts, { cache, scheduler, log }), (err: unknown) => isSgError(err, 'TOC_DIGEST_MISMATCH'));
    const ahead = await openEstargz(source);
    await assert.rejects(openLayer(source, { ...opts, resolved: ahead }, { cache, scheduler, log }), (err: unknown) => isSgError(err, 'TOC_DIGEST_MISMATCH'));
    const ok = await openLayer(source, { ...opts, tocDigest: b.tocDigest, resolved: ahead }, { cache, scheduler, log });
    assert.equal(ok.estargz, ahead, 'the TOC fetched ahead is used once its digest matches');
    ok.close();
  });
});
