/**
 * The daemon's remote-snapshot path over a private swarm: a busybox eStargz layer lives on
 * seeder A only; our daemon runs in worker B's network namespace against B's Kubo, behind a
 * containerd in the root namespace (unix socket). The Prepare containerd's unpacker sends
 * for the layer mounts it lazily; a process run on an overlay of it reads busybox, whose
 * blocks B's Kubo fetched from A over the 100 Mbit/s link.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, mountsUnder } from './harness/scratch.js';
import { Swarm, startDaemonOn, type NodeDaemon } from './harness/swarm.js';
import { netnsOf } from './harness/netns.js';
import { startContainerd, haveContainerd, type Containerd } from './harness/containerd.js';
import { buildBusyboxImage } from './harness/busybox-image.js';
import { buildEstargz } from '../src/estargz/index.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';

const execFileAsync = promisify(execFile);
const REF = 'containerd.io/snapshot.ref';
const skip = haveContainerd() ? false : 'containerd and runc are not installed';

let scratch: string;
let swarm: Swarm | undefined;
let daemon: NodeDaemon | undefined;
let ctd: Containerd | undefined;
let sn: SnapshotsClient | undefined;

before(async () => {
  if (skip) return;
  scratch = makeScratch();
  swarm = new Swarm(scratch);
  await swarm.addNode('a', { rate: '100mbit' });
  await swarm.addNode('b', { peers: ['a'] });
  daemon = await startDaemonOn(swarm.node('b'), join(scratch, 'daemon-b'), 'ipfs = true\nno_background_fetch = true\n\n[blob]\nfetching_timeout_sec = 10\n');
  ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
  sn = connectSnapshots(ctd.address, { namespace: ctd.namespace, snapshotter: 'stargz' });
  await swarm.connected('b', 'a');
});

after(async () => {
  sn?.close();
  await ctd?.stop();
  await daemon?.stop();
  await swarm?.destroy();
  if (scratch) destroyScratch(scratch);
  assert.deepEqual(netnsOf(process.pid), []);
});

test('a layer on seeder A becomes a remote snapshot on worker B, and a process on it reads bytes that crossed the link', { skip }, async () => {
  buildBusyboxImage(scratch);
  const blobPath = join(scratch, 'busybox.esgz');
  const built = await buildEstargz(join(scratch, 'img', 'layer.tar'), blobPath);
  const blob = readFileSync(blobPath);
  const cid = swarm!.node('a').add(blob);
  const labels = {
    [REF]: built.diffID,
    'containerd.io/snapshot/remote/urls': `ipfs://${cid}`,
    'containerd.io/snapshot/cri.layer-digest': built.blobDigest,
    'containerd.io/snapshot/stargz/toc.digest': built.tocDigest,
  };
  const rx0 = swarm!.net.counters('b').rx;
  await assert.rejects(sn!.prepare(`extract-1 ${built.diffID}`, '', labels), (err: { code?: number }) => err.code === 6, 'AlreadyExists: mounted, not pulled');
  assert.match(daemon!.log(), /"layer mounted"/);
  await ctd!.ctr(['snapshots', '--snapshotter', 'stargz', 'label', built.diffID, 'containerd.io/gc.root=test']);

  const mounts = await sn!.prepare('rootfs-1', built.diffID, { 'containerd.io/gc.root': 'test' });
  const rootfs = join(scratch, 'rootfs');
  mkdirSync(rootfs);
  const m = mounts[0]!;
  await execFileAsync('mount', ['-t', m.type, m.source, '-o', m.options.join(','), rootfs]);
  try {
    const { stdout } = await execFileAsync('chroot', [rootfs, '/bin/echo', 'hello from A']);
    assert.equal(stdout.trim(), 'hello from A');
    assert.ok((await readFile(join(rootfs, 'bin', 'busybox'))).equals(readFileSync('/bin/busybox')), 'busybox bytes equal the original');
  } finally {
    await execFileAsync('umount', [rootfs]);
  }
  const crossed = swarm!.net.counters('b').rx - rx0;
  process.stderr.write(`# B received ${crossed} bytes for a ${blob.length}-byte layer\n`);
  assert.ok(crossed > blob.length / 2, `B received ${crossed} bytes over its link for a ${blob.length}-byte layer`);
  await sn!.remove('rootfs-1');
  await daemon!.stop();
  daemon = undefined;
  assert.deepEqual(mountsUnder(join(scratch, 'daemon-b')), [], 'the daemon unmounts its layers on SIGTERM');
});
