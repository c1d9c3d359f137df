/**
 * The remote-snapshot path end to end below the CLI: an eStargz layer in a real Kubo node,
 * our daemon in IPFS mode behind Debian's containerd 1.6, and the Prepare that containerd's
 * unpacker sends for a layer (labels incl. the layer's ipfs:// URL and TOC digest).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'node:net';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { buildBusyboxImage } from './harness/busybox-image.js';
import { metricValue, startDaemon, type DaemonProc } from './harness/daemon.js';
import { freePort, waitFor } from './harness/proc.js';
import { buildEstargz } from '../src/estargz/index.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';

const execFileAsync = promisify(execFile);
let scratch: string;
let kubo: KuboNode;
let daemon: DaemonProc;
let ctd: Containerd;
let sn: SnapshotsClient;
let metricsUrl: string;
let daemonConfig: string;

const metric = (sample: string): Promise<number> => metricValue(metricsUrl, sample);

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  daemonConfig = `ipfs = true\nmetrics_address = "127.0.0.1:${port}"\nno_background_fetch = true\n`;
  daemon = await startDaemon(scratch, { config: daemonConfig, env: { IPFS_PATH: kubo.ipfsPath } });
  ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
  sn = connectSnapshots(ctd.address, { namespace: ctd.namespace, snapshotter: 'stargz' });
});
after(async () => {
  sn?.close();
  await ctd?.stop();
  await daemon?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
});

const REF = 'containerd.io/snapshot.ref';
let chainId = '';
let layerDigest = '';

test('Prepare with the unpacker labels of an eStargz layer in IPFS → a remote snapshot containerd accepts', async () => {
  const img = buildBusyboxImage(scratch);
  const blobPath = join(scratch, 'busybox.esgz');
  const built = await buildEstargz(join(scratch, 'img', 'layer.tar'), blobPath);
  const cid = kubo.add(readFileSync(blobPath));
  chainId = built.diffID;
  layerDigest = built.blobDigest;
  assert.ok(img.name);
  const labels = {
    [REF]: chainId,
    'containerd.io/snapshot/remote/urls': `ipfs://${cid}`,
    'containerd.io/snapshot/cri.layer-digest': layerDigest,
    'containerd.io/snapshot/stargz/toc.digest': built.tocDigest,
  };
  await assert.rejects(sn.prepare(`extract-1 ${chainId}`, '', labels), (err: { code?: number }) => err.code === 6, 'AlreadyExists: the layer is mounted, not pulled');
  const ls = await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls']);
  assert.match(ls, new RegExp(`${chainId}\\s+Committed`));
  const info = JSON.parse(await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'info', chainId])) as { Labels: Record<string, string> };
  assert.equal(info.Labels['containerd.io/snapshot/remote'], 'remote snapshot');
  assert.equal(info.Labels[REF], chainId);
  assert.ok(daemon.log().includes('"layer mounted"'));
  // No image references the layer here: keep containerd's GC from collecting it.
  await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'label', chainId, 'containerd.io/gc.root=test']);
});

test('a process runs on an overlay of the remote snapshot; its reads come through the FUSE layer', async () => {
  const mounts = await sn.prepare('rootfs-1', chainId, { 'containerd.io/gc.root': 'test' });
  assert.equal(mounts.length, 1);
  const rootfs = join(scratch, 'rootfs');
  mkdirSync(rootfs);
  const m = mounts[0]!;
  await execFileAsync('mount', ['-t', m.type, m.source, '-o', m.options.join(','), rootfs]);
  try {
    const { stdout } = await execFileAsync('chroot', [rootfs, '/bin/echo', 'hello from ipfs']);
    assert.equal(stdout.trim(), 'hello from ipfs');
    const state = await readdir(join(rootfs, '.stargz-snapshotter'));
    assert.deepEqual(state, [`${layerDigest}.json`]);
    const st = JSON.parse(await readFile(join(rootfs, '.stargz-snapshotter', state[0]!), 'utf8')) as { fetchedSize: number; size: number };
    assert.ok(st.fetchedSize > 0 && st.fetchedSize <= st.size);
  } finally {
    await execFileAsync('umount', [rootfs]);
  }
  await sn.remove('rootfs-1');
});

test('kill -9 of the daemon: the layer server keeps the mount; the restarted daemon adopts it and fetches nothing again', async () => {
  const rootfs = join(scratch, 'rootfs');
  const readBusybox = async () => {
    const mounts = await sn.prepare('rootfs-2', chainId, { 'containerd.io/gc.root': 'test' });
    const m = mounts[0]!;
    await execFileAsync('mount', ['-t', m.type, m.source, '-o', m.options.join(','), rootfs]);
    try {
      return await readFile(join(rootfs, 'bin', 'busybox'));
    } finally {
      await execFileAsync('umount', [rootfs]);
      await sn.remove('rootfs-2');
    }
  };
  const original = readFileSync('/bin/busybox');
  assert.ok((await readBusybox()).equals(original));
  const fetched = await metric('stargz_ipfs_fetched_bytes_total');
  assert.ok(fetched > 0);
  const [layerMount] = mountsUnder(daemon.root).filter((m) => m.endsWith('/fs'));
  assert.ok(layerMount, 'the layer is mounted');
  await daemon.stop('SIGKILL');
  // The daemon is gone; its layer server still answers on the mount.
  assert.ok((await readFile(join(layerMount, 'bin', 'busybox'))).equals(original));
  daemon = await startDaemon(scratch, { config: daemonConfig, env: { IPFS_PATH: kubo.ipfsPath }, logName: 'daemon-2.log' });
  assert.match(daemon.log(), /"adopted running layer server"/);
  assert.match(daemon.log(), /"remote snapshot still mounted by the layer server"/);
  assert.doesNotMatch(daemon.log(), /"detaching stale mount"/);
  await waitFor('containerd reconnected', 30_000, () => sn.list().then(() => true, () => undefined));
  assert.ok((await readBusybox()).equals(original));
  assert.equal(await metric('stargz_ipfs_fetched_bytes_total'), fetched, 'no IPFS bytes for data read before the kill');
});

test('daemon and layer server both killed: the restart mounts the layer again and serves it from the chunk cache', async () => {
  const rootfs = join(scratch, 'rootfs');
  const serverPid = Number(/"started layer server".*?"pid":(\d+)/.exec(readFileSync(join(scratch, 'logs', 'daemon.log'), 'utf8'))?.[1]);
  assert.ok(serverPid > 0, 'the first daemon started the layer server');
  await daemon.stop('SIGKILL');
  process.kill(serverPid, 'SIGKILL');
  await waitFor('layer server gone', 10_000, () => {
    try {
      process.kill(serverPid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
  assert.ok(mountsUnder(daemon.root).length > 0, 'the dead mount is still there');
  daemon = await startDaemon(scratch, { config: daemonConfig, env: { IPFS_PATH: kubo.ipfsPath }, logName: 'daemon-3.log' });
  assert.match(daemon.log(), /"started layer server"/);
  assert.match(daemon.log(), /"detaching stale mount"/);
  const afterRestore = await metric('stargz_ipfs_fetched_bytes_total');
  await waitFor('containerd reconnected', 30_000, () => sn.list().then(() => true, () => undefined));
  const mounts = await sn.prepare('rootfs-3', chainId, { 'containerd.io/gc.root': 'test' });
  const m = mounts[0]!;
  await execFileAsync('mount', ['-t', m.type, m.source, '-o', m.options.join(','), rootfs]);
  try {
    assert.ok((await readFile(join(rootfs, 'bin', 'busybox'))).equals(readFileSync('/bin/busybox')));
  } finally {
    await execFileAsync('umount', [rootfs]);
    await sn.remove('rootfs-3');
  }
  assert.equal(await metric('stargz_ipfs_fetched_bytes_total'), afterRestore, 'no IPFS bytes for data already in the chunk cache');
  assert.ok((await metric('stargz_ipfs_cache_hits_total')) > 0);
});

test('a layer that is not eStargz falls back to a normal snapshot', async () => {
  const cid = kubo.add(readFileSync(join(scratch, 'img', 'layer.tar')));
  const labels = {
    [REF]: 'sha256:' + 'a'.repeat(64),
    'containerd.io/snapshot/remote/urls': `ipfs://${cid}`,
    'containerd.io/snapshot/cri.layer-digest': 'sha256:' + 'b'.repeat(64),
    'containerd.io/snapshot/stargz/toc.digest': 'sha256:' + 'c'.repeat(64),
  };
  const mounts = await sn.prepare('extract-2 fallback', '', labels);
  assert.equal(mounts[0]?.type, 'bind');
  assert.match(daemon.log(), /"remote-snapshot-prepared":"false"/);
  assert.equal(await metric('stargz_ipfs_remote_snapshot_fallbacks_total{reason="NOT_ESTARGZ"}'), 1);
  await sn.remove('extract-2 fallback');
});

test('[fuse_manager] enable: SIGTERM leaves the layers mounted for the next start; SIGINT unmounts them and stops the layer server', async () => {
  await daemon.stop('SIGTERM');
  assert.equal(mountsUnder(daemon.root).filter((m) => m.endsWith('/fs')).length, 0, 'without fuse_manager, SIGTERM unmounts');
  // The stop is complete when the daemon has exited: its layer server is gone and the
  // chunk cache saved its index, so whoever deletes --root next races nothing.
  assert.deepEqual(layerServersOf(daemon.root), []);
  assert.ok(existsSync(join(daemon.root, 'cache', 'index.snapshot')));
  const fmSocket = join(scratch, 'fm', 'fuse-manager.sock');
  const config = `${daemonConfig}[fuse_manager]\nenable = true\naddress = "${fmSocket}"\n`;
  daemon = await startDaemon(scratch, { config, env: { IPFS_PATH: kubo.ipfsPath }, logName: 'daemon-fm-1.log' });
  assert.match(daemon.log(), /"started layer server"/);
  await waitFor('containerd reconnected', 30_000, () => sn.list().then(() => true, () => undefined));
  const [mp] = mountsUnder(daemon.root).filter((m) => m.endsWith('/fs'));
  assert.ok(mp, 'the remote snapshot is mounted again');
  await daemon.stop('SIGTERM');
  assert.ok((await readFile(join(mp, 'bin', 'busybox'))).equals(readFileSync('/bin/busybox')), 'still served after SIGTERM');
  daemon = await startDaemon(scratch, { config, env: { IPFS_PATH: kubo.ipfsPath }, logName: 'daemon-fm-2.log' });
  assert.match(daemon.log(), /"adopted running layer server"/);
  await daemon.stop('SIGINT');
  assert.deepEqual(mountsUnder(daemon.root), [], 'SIGINT unmounts everything');
  await assert.rejects(connectOnce(fmSocket), 'the layer server is gone');
  daemon = await startDaemon(scratch, { config: daemonConfig, env: { IPFS_PATH: kubo.ipfsPath }, logName: 'daemon-4.log' });
});

function connectOnce(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

/** Pids of layer server processes serving `root`. */
function layerServersOf(root: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${ent}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (cmd.includes('layer-server.js') && cmd.split('\0').includes(root)) out.push(Number(ent));
  }
  return out;
}
