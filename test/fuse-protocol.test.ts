/**
 * Our FUSE protocol implementation through the kernel, on the edges the layer tests do
 * not reach: the mount itself, 1 MiB reads, xattr size probes, listings longer than one
 * READDIR reply, refused writes, stale and hung mounts, unmounting while a file is open.
 * Layers are real (eStargz blobs in files, FileBlobSource); every read of a mount served
 * by this process is asynchronous or runs in a child process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { estargzOf } from './harness/layer-blobs.js';
import { ChunkCache } from '../src/cache/chunk-cache.js';
import { FileBlobSource } from '../src/source/file-source.js';
import { BackgroundScheduler } from '../src/layer/background-scheduler.js';
import { openLayer, type OpenedLayer } from '../src/layer/open-layer.js';
import { mountLayer, type Mounted } from '../src/fuse/mount.js';
import { abortConnection, findMount } from '../src/fuse/kernel-mount.js';
import { createLogger, type Logger } from '../src/log/logger.js';

const execFileAsync = promisify(execFile);
const corpusDir = new URL('../../../shared/testdata/estargz/', import.meta.url).pathname;
const corpus = JSON.parse(readFileSync(join(corpusDir, 'corpus.json'), 'utf8')) as { blobs: { name: string; blob: string; tocDigest: string }[] };
const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const quiet = createLogger('warn');

let scratch: string;
let cache: ChunkCache;
let scheduler: BackgroundScheduler;
const live: { m: Mounted; o: OpenedLayer }[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  reapStale();
  scratch = makeScratch();
  cache = await ChunkCache.open({ dir: join(scratch, 'cache'), maxBytes: 1 << 30 });
  scheduler = new BackgroundScheduler(2, 0);
});
after(async () => {
  for (const c of children) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
  for (const { m, o } of live) {
    o.close();
    await m.unmount();
  }
  scheduler?.close();
  await cache?.close();
  destroyScratch(scratch);
});

function blobFile(name: string, blob: Uint8Array): string {
  const path = join(scratch, `${name}.stargz`);
  writeFileSync(path, blob);
  return path;
}

async function mountFile(name: string, path: string, tocDigest: string, log: Logger = quiet): Promise<{ dir: string; m: Mounted }> {
  const opened = await openLayer(
    new FileBlobSource(path),
    { digest: sha(readFileSync(path)), tocDigest, prefetchSize: 0, noPrefetch: true, noBackgroundFetch: true, opaqueXattr: 'trusted' },
    { cache, scheduler, log },
  );
  const dir = join(scratch, 'mnt', name);
  const m = await mountLayer(opened.layer, dir, { attrTimeoutSec: 1, entryTimeoutSec: 1, log });
  live.push({ m, o: opened });
  return { dir, m };
}

async function mountCorpus(name: string): Promise<string> {
  const b = corpus.blobs.find((x) => x.name === name)!;
  return (await mountFile(name, join(corpusDir, b.blob), b.tocDigest)).dir;
}

async function python(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('python3', ['-c', script, ...args], { timeout: 30_000 });
  return stdout.trim();
}

/** `layer mount --blob` in a child process; resolves once it printed `mounted`. */
async function serveInChild(path: string, tocDigest: string, dir: string): Promise<ChildProcess> {
  const config = join(scratch, 'empty.toml');
  writeFileSync(config, '');
  const child = spawn(process.execPath, [cli, 'layer', 'mount', '--blob', path, '--toc-digest', tocDigest, '--config', config, '--root', join(scratch, 'child-root'), dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not mount within 30 s')), 30_000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`mounted ${dir}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited ${code} before mounting`));
    });
  });
  return child;
}

function mountinfoLine(dir: string): string | undefined {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === dir);
}

describe('the mount', () => {
  it('is fuse.stargz, read-only, nosuid, nodev, allow_other; the root is inode 4 and the state dir inode 1', async () => {
    const dir = await mountCorpus('tree-cs4096');
    const line = mountinfoLine(dir);
    assert.ok(line, 'listed in mountinfo');
    assert.match(line, / ro,nosuid,nodev,/);
    assert.match(line, / - fuse\.stargz stargz ro,.*allow_other/);
    assert.equal((await lstat(dir)).ino, 4);
    const state = await lstat(join(dir, '.stargz-snapshotter'));
    assert.equal(state.ino, 1);
    assert.ok(state.isDirectory());
    assert.equal((await readdir(join(dir, '.stargz-snapshotter'))).length, 1);
  });

  it('statfs: 4 KiB blocks, names up to 255 bytes', async () => {
    const dir = await mountCorpus('files-default');
    const out = await python('import os,sys;s=os.statvfs(sys.argv[1]);print(s.f_bsize,s.f_frsize,s.f_namemax,s.f_blocks)', dir);
    assert.equal(out, '4096 4096 255 0');
  });
});

describe('requests', () => {
  it('READs of up to 1 MiB reach the layer, and --log-level debug logs every op', async () => {
    const data = randomBytes(6 << 20);
    const { blob, result } = await estargzOf([{ name: 'big.bin', data }], 1 << 20);
    const lines: string[] = [];
    const log = createLogger('debug', { write: (l: string) => lines.push(l) });
    const { dir } = await mountFile('big', blobFile('big', blob), result.tocDigest, log);
    assert.ok((await readFile(join(dir, 'big.bin'))).equals(data));
    assert.deepEqual(await readdir(dir), ['big.bin']);
    const ops = lines.map((l) => JSON.parse(l) as { msg: string; op?: string; length?: number }).filter((r) => r.msg === 'fuse op');
    for (const op of ['lookup', 'open', 'read', 'opendir', 'readdir']) assert.ok(ops.some((r) => r.op === op), `${op} logged`);
    const largest = Math.max(...ops.filter((r) => r.op === 'read').map((r) => r.length ?? 0));
    assert.equal(largest, 1 << 20, 'the kernel asks for 1 MiB at once');
  });

  it('xattr size probes: size 0 answers the size, a short buffer ERANGE, an absent name ENODATA', async () => {
    const dir = await mountCorpus('meta-default');
    const probe = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
p = os.path.join(sys.argv[1], 'xattr/user').encode()
def get(name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.lgetxattr(p, name, buf if size else None, size)
    return (n, buf.raw[:n]) if n >= 0 else ('E' + str(ctypes.get_errno()), b'')
def lst(size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.llistxattr(p, buf if size else None, size)
    return (n, b','.join(sorted(buf.raw[:n].split(b'\\0')[:-1])).decode()) if n >= 0 else ('E' + str(ctypes.get_errno()), '')
size = get(b'user.unicode', 0)[0]
total = lst(0)[0]
print(size, get(b'user.unicode', size - 1)[0], get(b'user.unicode', size)[1] == os.getxattr(p, 'user.unicode', follow_symlinks=False),
      get(b'user.empty', 0)[0], get(b'user.absent', 64)[0], total, lst(total - 1)[0], lst(total)[1])
`;
    const [size, short, same, empty, absent, total, shortList, names] = (await python(probe, dir)).split(' ');
    assert.equal(size, String(Buffer.byteLength('héllo ✓')));
    assert.equal(short, 'E34', 'ERANGE');
    assert.equal(same, 'True');
    assert.equal(empty, '0');
    assert.equal(absent, 'E61', 'ENODATA');
    assert.equal(Number(total), 'user.empty\0user.foo\0user.unicode\0'.length);
    assert.equal(shortList, 'E34');
    assert.equal(names, 'user.empty,user.foo,user.unicode');
  });

  it('a listing longer than one READDIR reply: every name, with its inode and type', async () => {
    const names = Array.from({ length: 1500 }, (_, i) => `entry-with-a-rather-long-name-${String(i).padStart(5, '0')}`);
    const files = [{ name: 'd/', type: 'directory' as const }, ...names.map((n, i) => (i % 10 === 0 ? { name: `d/${n}/`, type: 'directory' as const } : { name: `d/${n}`, data: Buffer.from(n) }))];
    const { blob, result } = await estargzOf(files);
    const { dir } = await mountFile('wide', blobFile('wide', blob), result.tocDigest);
    const listing = await python(
      'import os,sys,json;print(json.dumps(sorted([e.name,e.inode(),e.is_dir(),e.is_file()] for e in os.scandir(sys.argv[1]))))',
      join(dir, 'd'),
    );
    const got = JSON.parse(listing) as [string, number, boolean, boolean][];
    assert.deepEqual(got.map((e) => e[0]), [...names].sort());
    for (const [name, ino, isDir, isFile] of got.slice(0, 40)) {
      const st = await lstat(join(dir, 'd', name));
      assert.equal(ino, st.ino, `${name} inode`);
      assert.equal(isDir, st.isDirectory(), `${name} dir`);
      assert.equal(isFile, st.isFile(), `${name} file`);
    }
  });

  it('writes are refused with EROFS', async () => {
    const dir = await mountCorpus('files-default');
    const out = await python(
      `
import os, sys, errno
d = sys.argv[1]
f = next(os.path.join(r, n) for r, _, fs in sorted(os.walk(d)) for n in sorted(fs))
res = []
for op in (lambda: open(f, 'r+b'), lambda: os.mkdir(os.path.join(d, 'new')), lambda: os.setxattr(f, 'user.x', b'1'),
           lambda: open(os.path.join(d, 'created'), 'wb'), lambda: os.unlink(f), lambda: os.chmod(f, 0o600)):
    try:
        op(); res.append('ok')
    except OSError as e:
        res.append(errno.errorcode[e.errno])
print(' '.join(res))`,
      dir,
    );
    assert.equal(out, 'EROFS EROFS EROFS EROFS EROFS EROFS');
  });
});

describe('mount and unmount', () => {
  it('a mount left by a SIGKILLed server is replaced by a working one', async () => {
    const b = corpus.blobs.find((x) => x.name === 'files-default')!;
    const dir = join(scratch, 'mnt', 'killed');
    const child = await serveInChild(join(corpusDir, b.blob), b.tocDigest, dir);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await assert.rejects(lstat(join(dir, 'x')), { code: 'ENOTCONN' });
    const m = await mountFile('killed', join(corpusDir, b.blob), b.tocDigest);
    assert.equal(m.dir, dir);
    assert.ok((await readdir(dir)).length > 0);
    assert.equal(mountsUnder(dir).length, 1, 'the stale mount is gone, not stacked under');
  });

  it('a mount whose server hangs (SIGSTOP) is detached within a bound, and mounted again', async () => {
    const b = corpus.blobs.find((x) => x.name === 'files-default')!;
    const dir = join(scratch, 'mnt', 'hung');
    const child = await serveInChild(join(corpusDir, b.blob), b.tocDigest, dir);
    child.kill('SIGSTOP');
    const started = Date.now();
    await mountFile('hung', join(corpusDir, b.blob), b.tocDigest);
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    assert.ok((await readdir(dir)).length > 0);
    child.kill('SIGKILL');
    child.kill('SIGCONT');
  });

  it('mount clears every mount stacked at the mountpoint first', async () => {
    const b = corpus.blobs.find((x) => x.name === 'files-default')!;
    const dir = join(scratch, 'mnt', 'stacked');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 2; i++) await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    await mountFile('stacked', join(corpusDir, b.blob), b.tocDigest);
    assert.deepEqual(mountsUnder(dir), [dir]);
    assert.match(mountinfoLine(dir)!, / - fuse\.stargz /);
  });

  it('aborting the connection of a hung server fails its ops at once instead of waiting', async () => {
    const b = corpus.blobs.find((x) => x.name === 'files-default')!;
    const dir = join(scratch, 'mnt', 'aborted');
    const child = await serveInChild(join(corpusDir, b.blob), b.tocDigest, dir);
    child.kill('SIGSTOP');
    const entry = await findMount(dir);
    assert.ok(entry);
    await abortConnection(entry.dev, quiet);
    // In a child, bounded: a stat that waited on the stopped server would never end by itself.
    await assert.rejects(execFileAsync('stat', [join(dir, 'data')], { timeout: 10_000, killSignal: 'SIGKILL' }), (err: { stderr?: string; killed?: boolean }) => {
      assert.equal(err.killed, false, 'stat waited for the hung server');
      assert.match(err.stderr ?? '', /Transport endpoint is not connected|Software caused connection abort/);
      return true;
    });
    child.kill('SIGKILL');
    child.kill('SIGCONT');
  });

  it('unmount with a file still open detaches the mount and resolves; the file then fails', async () => {
    const b = corpus.blobs.find((x) => x.name === 'files-default')!;
    const { dir, m } = await mountFile('busy', join(corpusDir, b.blob), b.tocDigest);
    const name = (await readdir(dir)).find((n) => !n.startsWith('.'))!;
    const fh = await open(join(dir, name));
    try {
      await m.unmount();
      assert.equal(mountinfoLine(dir), undefined);
      await assert.rejects(fh.read(Buffer.alloc(4096), 0, 4096, 0), 'the connection is closed');
      await m.unmount();
    } finally {
      await fh.close().catch(() => {});
    }
  });
});
