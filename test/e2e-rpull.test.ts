/**
 * The whole flow end to end with Debian's containerd 1.6, runc, a real Kubo node and our
 * daemon in IPFS mode: build an image, ipfs-push it, `image rpull --ipfs CID`, and
 * `ctr run --snapshotter stargz CID …` reads the files lazily out of IPFS. Then: a second
 * container reuses the mounts; a daemon restart keeps the image runnable without a new
 * pull; an image pushed with --estargz=false runs through the fallback (pulled) path;
 * `ctr image rm` + GC leaves no snapshot and no FUSE mount; Kubo down → a clear error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { startDaemon, type DaemonProc } from './harness/daemon.js';
import { buildImage } from './harness/push-fixtures.js';
import { waitFor } from './harness/proc.js';
import { cidOf, daemonConfig, runCli, seededBytes, sha256Hex } from './harness/e2e-image.js';

const MiB = 1024 * 1024;
const FILE_TEXT = 'hello from an IPFS layer\n';
const BIG = seededBytes(6 * MiB + 123, 'e2e-rpull');

let scratch: string;
let kubo: KuboNode;
let daemon: DaemonProc;
let ctd: Containerd;
let env: NodeJS.ProcessEnv;
let lazyCid: string;
let plainCid: string;
let runs = 0;

const config = daemonConfig('no_background_fetch = true\n');

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  env = { IPFS_PATH: kubo.ipfsPath };
  daemon = await startDaemon(scratch, { config, env });
  ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
  const dir = join(scratch, 'image');
  mkdirSync(dir);
  const built = await buildImage(dir, { name: 'example.com/sgt/e2e:1', layers: [{ 'data/file': FILE_TEXT, 'data/big.bin': BIG }] });
  await ctd.ctr(['images', 'import', built.tarPath]);
  const where = ['--address', ctd.address, '--namespace', ctd.namespace];
  lazyCid = cidOf(await runCli(['image', 'ipfs-push', '--quiet', ...where, built.name], env));
  plainCid = cidOf(await runCli(['image', 'ipfs-push', '--quiet', '--estargz=false', ...where, built.name], env));
  // Only what the pulls bring may be in containerd.
  for (const name of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', name]);
});

after(async () => {
  await ctd?.stop();
  await daemon?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
});

const rpull = (cid: string, extra: string[] = []) => runCli(['image', 'rpull', '--ipfs', '--address', ctd.address, '--namespace', ctd.namespace, ...extra, cid], env);

async function runIn(cid: string, snapshotter: string, cmd: string[]): Promise<string> {
  return ctd.ctr(['run', '--rm', '--snapshotter', snapshotter, cid, `sgt-e2e-${process.pid}-${++runs}`, ...cmd]);
}

const expected = `${sha256Hex(Buffer.from(FILE_TEXT))}  /data/file\n${sha256Hex(BIG)}  /data/big.bin\n`;
/** The layer store's line per mounted layer (the FUSE adapter logs its own at debug). */
const mountedCount = () => daemon.log().split('\n').filter((l) => l.includes('"layer mounted"') && l.includes('"blob"')).length;
const fuseMounts = () => mountsUnder(daemon.root).filter((m) => m.endsWith('/fs'));

test('rpull --ipfs CID makes remote snapshots; ctr run reads the files lazily through them', async () => {
  const r = await rpull(`ipfs://${lazyCid}`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^fetching sha256:[0-9a-f]{8}\.\.\. application\/vnd\.oci\.image\.config\.v1\+json$/m);
  assert.match(r.stdout, /^fetching sha256:[0-9a-f]{8}\.\.\. application\/vnd\.oci\.image\.manifest\.v1\+json$/m);
  assert.doesNotMatch(r.stdout, /layer\.v1\.tar/, 'no layer is fetched');
  assert.match(r.stdout, /layer 1\/2 .*remote snapshot \(lazy\)/);
  assert.match(r.stdout, /layer 2\/2 .*remote snapshot \(lazy\)/);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  assert.equal(mountedCount(), 2);
  // The upper layer was resolved while the base one was prepared (its TOC fetched ahead).
  const mountedLines = daemon.log().split('\n').filter((l) => l.includes('"layer mounted"') && l.includes('"blob"'));
  assert.deepEqual(mountedLines.map((l) => (JSON.parse(l) as { resolvedAhead: boolean }).resolvedAhead), [false, true]);

  assert.ok((await ctd.ctr(['images', 'ls', '-q'])).split('\n').includes(lazyCid), 'the image is named by its CID');
  const ls = await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls']);
  assert.equal(ls.trim().split('\n').length, 3, ls);
  // The labels the snapshotter got for the base layer (stored on its remote snapshot).
  const rows = ls.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const base = rows.find((r) => r.length === 2 && r[1] === 'Committed')![0]!;
  const top = rows.find((r) => !rows.some((o) => o[1] === r[0]))![0]!;
  const labels = (JSON.parse(await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'info', base])) as { Labels: Record<string, string> }).Labels;
  assert.equal(labels['containerd.io/snapshot.ref'], base);
  assert.equal(labels['containerd.io/snapshot/remote'], 'remote snapshot');
  assert.equal(labels['containerd.io/snapshot/remote/stargz.reference'], lazyCid);
  const digest = labels['containerd.io/snapshot/remote/stargz.digest']!;
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const layers = labels['containerd.io/snapshot/remote/stargz.layers']!.split(',');
  assert.equal(layers.length, 2);
  assert.equal(layers[0], digest);
  assert.match(labels['containerd.io/snapshot/remote/urls']!, /^ipfs:\/\/b[a-z2-7]+$/);
  assert.equal(labels['containerd.io/snapshot/remote/urls.0'], labels['containerd.io/snapshot/remote/urls']);
  assert.match(labels['containerd.io/snapshot/remote/urls.1']!, /^ipfs:\/\/b[a-z2-7]+$/);
  assert.equal(labels['containerd.io/snapshot/remote/stargz.prefetch'], '10485760');
  assert.match(labels['containerd.io/snapshot/stargz/toc.digest']!, /^sha256:[0-9a-f]{64}$/);
  // As containerd's unpacker: the config holds the top snapshot against GC.
  const content = await ctd.ctr(['content', 'ls']);
  assert.match(content, new RegExp(`containerd\\.io/gc\\.ref\\.snapshot\\.stargz=${top}`));
  assert.equal(await runIn(lazyCid, 'stargz', ['/bin/cat', '/data/file']), FILE_TEXT);
});

test('a second container from the same image reuses the mounted layers', async () => {
  const before = mountedCount();
  assert.equal(await runIn(lazyCid, 'stargz', ['/bin/sha256sum', '/data/file', '/data/big.bin']), expected);
  assert.equal(mountedCount(), before, 'no new layer mount');
  assert.equal(fuseMounts().length, 2);
});

test('rpull of an image already unpacked does nothing more', async () => {
  const r = await rpull(lazyCid);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /0 lazy, 0 pulled, 2 already present/);
});

test('after a daemon restart the image runs again without a new pull', async () => {
  await daemon.stop();
  daemon = await startDaemon(scratch, { config, env, logName: 'daemon-2.log' });
  await waitFor('containerd reconnected', 30_000, () => ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls']).then(() => true, () => undefined));
  assert.equal(await runIn(lazyCid, 'stargz', ['/bin/sha256sum', '/data/file', '/data/big.bin']), expected);
  assert.equal(fuseMounts().length, 2);
});

test('an image pushed with --estargz=false goes through the fallback: layers pulled, applied, committed', async () => {
  const r = await rpull(plainCid);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^fetching sha256:[0-9a-f]{8}\.\.\. application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip$/m);
  assert.match(r.stdout, /0 lazy, 2 pulled/);
  assert.equal(await runIn(plainCid, 'stargz', ['/bin/sha256sum', '/data/file', '/data/big.bin']), expected);
});

test('rpull --snapshotter overlayfs pulls every layer; ctr run --snapshotter overlayfs runs it', async () => {
  const r = await rpull(lazyCid, ['--snapshotter', 'overlayfs']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /0 lazy, 2 pulled/);
  assert.equal(await runIn(lazyCid, 'overlayfs', ['/bin/sha256sum', '/data/file', '/data/big.bin']), expected);
});

test('ctr image rm + GC removes the snapshots and the FUSE mounts', async () => {
  for (const cid of [lazyCid, plainCid]) await ctd.ctr(['images', 'rm', '--sync', cid]);
  await waitFor('stargz snapshots gone', 30_000, async () => ((await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).trim().split('\n').length === 1 ? true : undefined));
  await waitFor('FUSE mounts gone', 30_000, () => (fuseMounts().length === 0 ? true : undefined));
  assert.equal((await ctd.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls'])).trim().split('\n').length, 1);
});

test('--use-containerd-labels: the CRI label set reaches the daemon, and the layers are remote snapshots', async () => {
  const r = await rpull(lazyCid, ['--use-containerd-labels']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  const top = (await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).split('\n').find((l) => /\sCommitted\s*$/.test(l));
  const info = JSON.parse(await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'info', top!.split(/\s+/)[0]!])) as { Labels: Record<string, string> };
  assert.equal(info.Labels['containerd.io/snapshot/cri.image-ref'], lazyCid);
  assert.equal(info.Labels['containerd.io/snapshot/remote'], 'remote snapshot');
  assert.equal(info.Labels['containerd.io/snapshot/remote/stargz.reference'], undefined);
  assert.equal(await runIn(lazyCid, 'stargz', ['/bin/cat', '/data/file']), FILE_TEXT);
  await ctd.ctr(['images', 'rm', '--sync', lazyCid]);
  await waitFor('FUSE mounts gone', 30_000, () => (fuseMounts().length === 0 ? true : undefined));
});

test('--platform picks the image for a platform (another one is a clear error); --skip-content-verify marks the layers for the daemon', async () => {
  const other = await rpull(lazyCid, ['--platform', 'linux/s390x']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /no manifest for platform linux\/s390x; available: linux\/amd64/);
  assert.doesNotMatch(other.stdout, /lazy|pulled/, 'nothing unpacked');
  const r = await rpull(lazyCid, ['--platform', 'linux/amd64', '--skip-content-verify']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  const top = (await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).split('\n').find((l) => /\sCommitted\s*$/.test(l));
  const info = JSON.parse(await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'info', top!.split(/\s+/)[0]!])) as { Labels: Record<string, string> };
  assert.equal(info.Labels['containerd.io/snapshot/remote/stargz.skipverify'], 'true');
  // The TOC digest label is still passed, so the daemon still verifies the TOC (as upstream).
  assert.match(info.Labels['containerd.io/snapshot/stargz/toc.digest']!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await runIn(lazyCid, 'stargz', ['/bin/cat', '/data/file']), FILE_TEXT);
  await ctd.ctr(['images', 'rm', '--sync', lazyCid]);
  await waitFor('FUSE mounts gone', 30_000, () => (fuseMounts().length === 0 ? true : undefined));
});

test('with Kubo stopped, rpull fails at once with a clear error', async () => {
  await kubo.stop();
  const t = Date.now();
  const r = await rpull(lazyCid);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is the IPFS daemon running\?/);
  assert.equal(r.stdout, '');
  assert.ok(Date.now() - t < 20_000);
  await kubo.start();
});
