/**
 * The whole path peer to peer: seeder A (its own containerd + Kubo) imports a busybox
 * image with a data layer and `ipfs-push`es it in A's network namespace; worker B (its own
 * containerd 1.6 + runc, our daemon with `ipfs = true` and B's Kubo, both in B's
 * namespace) runs `image rpull --ipfs CID` and `ctr run --snapshotter stargz`: the
 * container reads the files lazily, their bytes fetched by B's Kubo from A over the
 * 100 Mbit/s link of a private swarm. Nothing is pinned on B beforehand.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, mountsUnder } from './harness/scratch.js';
import { Swarm, startDaemonOn, runCliOn, type NodeDaemon, type SwarmNode } from './harness/swarm.js';
import { netnsOf } from './harness/netns.js';
import { startContainerd, haveContainerd, type Containerd } from './harness/containerd.js';
import { buildImage } from './harness/push-fixtures.js';
import { waitFor } from './harness/proc.js';
import { cidOf, seededBytes, sha256Hex } from './harness/e2e-image.js';

const MiB = 1024 * 1024;
const FILE_TEXT = 'hello from seeder A\n';
const BIG = seededBytes(8 * MiB + 321, 'p2p-e2e');
const skip = haveContainerd() ? false : 'containerd and runc are not installed';

let scratch: string | undefined;
let swarm: Swarm | undefined;
let ctdA: Containerd | undefined;
let ctdB: Containerd | undefined;
let daemon: NodeDaemon | undefined;
let a: SwarmNode;
let b: SwarmNode;
let cid: string;
let runs = 0;

before(async () => {
  if (skip) return;
  scratch = makeScratch();
  swarm = new Swarm(scratch);
  a = await swarm.addNode('a', { rate: '100mbit' });
  b = await swarm.addNode('b', { peers: ['a'] });
  // Two containerds on one host: own scratch dirs (root, state, sockets), own namespace names.
  ctdA = await startContainerd(join(scratch, 'node-a'));
  daemon = await startDaemonOn(b, join(scratch, 'daemon-b'), 'ipfs = true\nno_background_fetch = true\n\n[blob]\nfetching_timeout_sec = 30\n');
  ctdB = await startContainerd(join(scratch, 'node-b'), { stargzSocket: daemon.socket });
  assert.notEqual(ctdA.namespace, ctdB.namespace);

  const dir = join(scratch, 'image');
  mkdirSync(dir);
  const built = await buildImage(dir, { name: 'example.com/sgt/p2p-e2e:1', layers: [{ 'data/file': FILE_TEXT, 'data/big.bin': BIG }] });
  await ctdA.ctr(['images', 'import', built.tarPath]);
  cid = cidOf(await runCliOn(a, ['image', 'ipfs-push', '--quiet', '--address', ctdA.address, '--namespace', ctdA.namespace, built.name]));
  await swarm.connected('b', 'a');
});

after(async () => {
  await ctdB?.stop();
  await daemon?.stop();
  await ctdA?.stop();
  await swarm?.destroy();
  if (scratch) {
    destroyScratch(scratch);
    assert.deepEqual(mountsUnder(scratch), []);
  }
  assert.deepEqual(netnsOf(process.pid), []);
});

test('an image pushed on seeder A runs lazily on worker B: rpull --ipfs + ctr run --snapshotter stargz, bytes over the link', { skip }, async () => {
  assert.equal(b.cli(['refs', 'local']).toString().split('\n').filter(Boolean).length <= 16, true, 'B starts with an empty blockstore');
  const net = swarm!.net;
  const rx0 = net.counters('b').rx;
  const txA0 = net.counters('a').tx;

  const r = await runCliOn(b, ['image', 'rpull', '--ipfs', '--address', ctdB!.address, '--namespace', ctdB!.namespace, `ipfs://${cid}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  assert.doesNotMatch(r.stdout, /layer\.v1\.tar/, 'no layer is fetched by rpull');
  const afterPull = net.counters('b').rx - rx0;
  assert.ok(afterPull < BIG.length / 2, `rpull alone received ${afterPull} bytes: the layers stayed remote`);

  const out = await ctdB!.ctr(['run', '--rm', '--snapshotter', 'stargz', cid, `sgt-p2p-${process.pid}-${++runs}`, '/bin/sh', '-c', 'cat /data/file; sha256sum /data/big.bin']);
  assert.equal(out, `${FILE_TEXT}${sha256Hex(BIG)}  /data/big.bin\n`);

  const rx = net.counters('b').rx - rx0;
  const txA = net.counters('a').tx - txA0;
  process.stderr.write(`# B received ${rx} bytes (A sent ${txA}) for an ${BIG.length}-byte file\n`);
  assert.ok(rx >= BIG.length, `B received ${rx} bytes over its link for a ${BIG.length}-byte file`);
  assert.ok(txA >= BIG.length, `A sent ${txA} bytes`);
  assert.match(daemon!.log(), /"layer mounted"/);
});

test('ctr image rm + GC on B removes the snapshots and the FUSE mounts; the daemon stops cleanly', { skip }, async () => {
  await ctdB!.ctr(['images', 'rm', '--sync', cid]);
  await waitFor('stargz snapshots gone', 30_000, async () => ((await ctdB!.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).trim().split('\n').length === 1 ? true : undefined));
  await waitFor('FUSE mounts gone', 30_000, () => (mountsUnder(daemon!.root).filter((m) => m.endsWith('/fs')).length === 0 ? true : undefined));
  await ctdB!.stop();
  ctdB = undefined;
  await daemon!.stop();
  daemon = undefined;
  assert.deepEqual(mountsUnder(join(scratch!, 'daemon-b')), []);
});
