/**
 * The remote-snapshot handshake (spec §2.2, §2.8) against a FAULT-INJECTING TEST DOUBLE of
 * RemoteLayers: its "layers" are tmpfs mounts holding a marker file, and labels tell it to
 * succeed, fail, hang or report the layer unavailable. The real IPFS layer filesystem is
 * exercised by its own end-to-end test; this file checks what the snapshotter does around
 * it: commit under the ref, AlreadyExists, List lookup, fallback and its log line,
 * availability checks, unmount before delete, restore at start and unmount at stop.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { defaultConfig } from '../src/config/load.js';
import { createLogger, type Logger } from '../src/log/logger.js';
import { SgError } from '../src/errors.js';
import { startDaemon } from '../src/service/daemon.js';
import { connectSnapshots } from '../src/service/client.js';
import { Snapshotter } from '../src/snapshotter/snapshotter.js';
import type { RemoteLayers } from '../src/snapshotter/remote.js';
import { registry } from '../src/metrics/metrics.js';

const run = promisify(execFile);
let scratch: string;
let seq = 0;

before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

/** Test double: `test.behaviour` label = ok (default) | fail | hang | late. */
class FakeRemoteLayers implements RemoteLayers {
  readonly served = new Map<string, Readonly<Record<string, string>>>();
  readonly unavailable = new Set<string>();
  readonly calls: string[] = [];
  failAll = false;

  async mount(mountpoint: string, labels: Readonly<Record<string, string>>, signal: AbortSignal): Promise<void> {
    this.calls.push(`mount ${mountpoint}`);
    const behaviour = this.failAll ? 'fail' : (labels['test.behaviour'] ?? 'ok');
    if (behaviour === 'fail') throw new SgError('NOT_ESTARGZ', 'not an eStargz blob', { mountpoint });
    if (behaviour === 'hang' || behaviour === 'late') {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      if (behaviour === 'hang') throw new SgError('ABORTED', 'mount aborted');
    }
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountpoint]);
    writeFileSync(join(mountpoint, `layer-${labels['containerd.io/snapshot.ref'] ?? 'x'}`), JSON.stringify(labels));
    this.served.set(mountpoint, labels);
  }

  async check(mountpoint: string): Promise<void> {
    this.calls.push(`check ${mountpoint}`);
    if (!this.served.has(mountpoint)) throw new SgError('NOT_FOUND', 'layer not registered', { mountpoint });
    if (this.unavailable.has(mountpoint)) throw new SgError('UNAVAILABLE', 'IPFS node unreachable', { mountpoint });
  }

  mounted(mountpoint: string): boolean {
    return this.served.has(mountpoint);
  }

  /** Its tmpfs mounts are served by the kernel, so a stat is safe: nothing to report. */
  rootOwner(): undefined {
    return undefined;
  }

  async unmount(mountpoint: string): Promise<void> {
    this.calls.push(`unmount ${mountpoint}`);
    if (!this.served.delete(mountpoint)) throw new SgError('NOT_FOUND', 'layer not registered', { mountpoint });
    await run('umount', [mountpoint]);
  }
}

interface Captured {
  log: Logger;
  records: () => Record<string, unknown>[];
}
function captureLog(): Captured {
  const lines: string[] = [];
  return {
    log: createLogger('debug', { write: (l: string) => lines.push(l) }),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Labels as containerd's unpacker and the stargz/nerdctl label handlers send them. */
function layerLabels(n: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'containerd.io/snapshot.ref': `sha256:${n}`,
    'containerd.io/snapshot/cri.layer-digest': `sha256:${n.padStart(64, '0')}`,
    'containerd.io/snapshot/remote/urls': `ipfs://bafy${n}`,
    'containerd.io/snapshot/stargz/toc.digest': 'sha256:' + 'e'.repeat(64),
    ...extra,
  };
}

const freshRoot = (): string => {
  const dir = join(scratch, String(++seq));
  mkdirSync(dir);
  return dir;
};
const code = (c: grpc.status) => (err: unknown) => (err as grpc.ServiceError).code === c;

test('remote layer: Prepare answers AlreadyExists and containerd finds it by ref and parent', async () => {
  const dir = freshRoot();
  const remote = new FakeRemoteLayers();
  const { log } = captureLog();
  const daemon = await startDaemon({ config: defaultConfig(), root: join(dir, 'root'), address: join(dir, 's.sock'), log, remote });
  const sn = connectSnapshots(join(dir, 's.sock'));
  try {
    const l1 = layerLabels('c1');
    await assert.rejects(sn.prepare('default/1/extract-1 sha256:c1', '', l1), code(grpc.status.ALREADY_EXISTS));
    const info = await sn.stat('sha256:c1');
    assert.equal(info.kind, 'COMMITTED');
    assert.deepEqual(info.labels, { ...l1, 'containerd.io/snapshot/remote': 'remote snapshot' }, 'all Prepare labels kept');
    await assert.rejects(sn.stat('default/1/extract-1 sha256:c1'), code(grpc.status.NOT_FOUND), 'the key became the target');
    assert.deepEqual(await sn.usage('sha256:c1'), { size: 0, inodes: 0 });

    // containerd's lookup after AlreadyExists (core/metadata/snapshot.go)
    const found = await sn.list(['labels."containerd.io/snapshot.ref"==sha256:c1,parent==""']);
    assert.deepEqual(found.infos.map((i) => i.name), ['sha256:c1']);

    // The same layer pulled in another namespace: no second mount.
    const mountsSoFar = remote.calls.filter((c) => c.startsWith('mount')).length;
    await assert.rejects(sn.prepare('other/1/extract-9 sha256:c1', '', l1), code(grpc.status.ALREADY_EXISTS));
    assert.equal(remote.calls.filter((c) => c.startsWith('mount')).length, mountsSoFar);

    await assert.rejects(sn.prepare('default/2/extract-2 sha256:c2', 'sha256:c1', layerLabels('c2')), code(grpc.status.ALREADY_EXISTS));
    assert.equal((await sn.list(['labels."containerd.io/snapshot.ref"==sha256:c2,parent==sha256:c1'])).infos.length, 1);

    // A container on top: overlay of both layers, nearest first, readable through the kernel.
    const mounts = await sn.prepare('default/3/ctr', 'sha256:c2');
    const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
    assert.deepEqual(lower, [...remote.served.keys()].reverse());
    const target = join(dir, 'rootfs');
    mkdirSync(target);
    await run('mount', ['-t', 'overlay', '-o', mounts[0]!.options.join(','), 'overlay', target]);
    try {
      assert.deepEqual(readdirSync(target).sort(), ['layer-sha256:c1', 'layer-sha256:c2']);
    } finally {
      await run('umount', [target]);
    }
    assert.ok(remote.calls.filter((c) => c.startsWith('check')).length >= 2, 'parents checked before mounts are handed out');
  } finally {
    sn.close();
    await daemon.stop();
  }
  assert.equal(remote.served.size, 0, 'stop unmounts the remote layers');
  assert.deepEqual(mountsUnder(dir), []);
});

test('an unavailable remote layer makes Prepare, View and Mounts on top of it fail with Unavailable', async () => {
  const dir = freshRoot();
  const remote = new FakeRemoteLayers();
  const daemon = await startDaemon({ config: defaultConfig(), root: join(dir, 'root'), address: join(dir, 's.sock'), log: captureLog().log, remote });
  const sn = connectSnapshots(join(dir, 's.sock'));
  try {
    await assert.rejects(sn.prepare('k1', '', layerLabels('c1')), code(grpc.status.ALREADY_EXISTS));
    await sn.prepare('ctr', 'sha256:c1');
    const [mp] = remote.served.keys();
    remote.unavailable.add(mp!);
    await assert.rejects(sn.mounts('ctr'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE && /unavailable/.test(err.details));
    await assert.rejects(sn.prepare('ctr2', 'sha256:c1'), code(grpc.status.UNAVAILABLE));
    await assert.rejects(sn.view('v', 'sha256:c1'), code(grpc.status.UNAVAILABLE));
    remote.unavailable.clear();
    assert.equal((await sn.mounts('ctr')).length, 1);
  } finally {
    sn.close();
    await daemon.stop();
  }
});

test('a layer that cannot be mounted falls back to a normal snapshot and says why, once', async () => {
  const dir = freshRoot();
  const remote = new FakeRemoteLayers();
  const cap = captureLog();
  const sn = await Snapshotter.open({ root: dir, log: cap.log, remote, remoteMountBudgetMs: 300 });
  try {
    const before = await fallbacks('NOT_ESTARGZ');
    const mounts = await sn.prepare('k-fail', '', layerLabels('f1', { 'test.behaviour': 'fail' }));
    assert.deepEqual(mounts, [{ type: 'bind', source: join(dir, 'snapshotter', 'snapshots', '1', 'fs'), options: ['rw', 'rbind'] }]);
    assert.equal(sn.stat('k-fail').kind, 'active', 'containerd applies the layer into it');
    const lines = cap.records().filter((r) => r['remote-snapshot-prepared'] === 'false');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'info');
    assert.equal(lines[0]!.reason, 'NOT_ESTARGZ');
    assert.equal(lines[0]!.layer, `sha256:${'f1'.padStart(64, '0')}`);
    assert.equal(lines[0]!.cid, 'bafyf1');
    assert.equal(await fallbacks('NOT_ESTARGZ'), before + 1, 'fallback metric counted');

    // Over budget: TIMEOUT; a mount that completes after the budget is taken down again.
    const t0 = Date.now();
    await sn.prepare('k-hang', '', layerLabels('h1', { 'test.behaviour': 'hang' }));
    assert.ok(Date.now() - t0 < 5000);
    await sn.prepare('k-late', '', layerLabels('l1', { 'test.behaviour': 'late' }));
    await waitUntil(() => remote.calls.some((c) => c.startsWith('unmount')));
    assert.equal(remote.served.size, 0, 'the late mount was unmounted');
    assert.deepEqual(cap.records().filter((r) => r['remote-snapshot-prepared'] === 'false').map((r) => r.reason), ['NOT_ESTARGZ', 'TIMEOUT', 'TIMEOUT']);
  } finally {
    await sn.close();
  }
});

test('Remove and Cleanup unmount the layer before deleting its directory', async () => {
  const dir = freshRoot();
  const remote = new FakeRemoteLayers();
  const sn = await Snapshotter.open({ root: dir, log: captureLog().log, remote });
  const snapshots = join(dir, 'snapshotter', 'snapshots');
  try {
    await assert.rejects(sn.prepare('k1', '', layerLabels('c1')), /already exists/);
    await assert.rejects(sn.prepare('k2', 'sha256:c1', layerLabels('c2')), /already exists/);
    await assert.rejects(sn.remove('sha256:c1'), /child/);
    assert.equal(remote.served.size, 2, 'a refused remove unmounts nothing');
    await sn.remove('sha256:c2');
    await sn.remove('sha256:c1');
    assert.equal(remote.served.size, 0);
    assert.deepEqual(readdirSync(snapshots), []);
    assert.deepEqual(mountsUnder(dir), []);

    // Orphans with something mounted inside: a layer the double serves, a bare kernel
    // mount, and a bind of data that is not ours, which must survive the cleanup.
    for (const id of ['77', '78', '79']) mkdirSync(join(snapshots, id, 'fs'), { recursive: true });
    await remote.mount(join(snapshots, '77', 'fs'), layerLabels('o1'), new AbortController().signal);
    await run('mount', ['-t', 'tmpfs', 'tmpfs', join(snapshots, '78', 'fs')]);
    const precious = join(dir, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'keep'), 'data');
    await run('mount', ['--bind', precious, join(snapshots, '79', 'fs')]);
    await sn.cleanup();
    assert.ok(remote.calls.includes(`unmount ${join(snapshots, '77', 'fs')}`));
    assert.deepEqual(readdirSync(snapshots), []);
    assert.deepEqual(mountsUnder(dir), []);
    assert.deepEqual(readdirSync(precious), ['keep'], 'cleanup detached the bind mount before deleting');
  } finally {
    await sn.close();
  }
});

test('restart: stale mounts detached, remote snapshots mounted again from stored labels', async () => {
  const dir = freshRoot();
  const remote = new FakeRemoteLayers();
  let sn = await Snapshotter.open({ root: dir, log: captureLog().log, remote });
  await assert.rejects(sn.prepare('k1', '', layerLabels('c1')), /already exists/);
  await assert.rejects(sn.prepare('k2', 'sha256:c1', layerLabels('c2')), /already exists/);
  const stored = [...remote.served.values()].map((l) => ({ ...l, 'containerd.io/snapshot/remote': 'remote snapshot' }));
  // As after kill -9: the mounts stay, the process that served them is gone.
  remote.served.clear();
  assert.equal(mountsUnder(join(dir, 'snapshotter')).length, 2);

  const again = new FakeRemoteLayers();
  sn = await Snapshotter.open({ root: dir, log: captureLog().log, remote: again });
  try {
    assert.equal(mountsUnder(join(dir, 'snapshotter')).length, 2, 'the old mounts replaced by new ones, not stacked');
    assert.deepEqual([...again.served.values()], stored, 'mounted with the labels stored at commit');
    assert.deepEqual(again.calls.filter((c) => c.startsWith('mount')).length, 2);
  } finally {
    await sn.close();
  }
  assert.equal(again.served.size, 0, 'close unmounted them');
  assert.deepEqual(mountsUnder(dir), []);

  const failing = new FakeRemoteLayers();
  failing.failAll = true;
  await assert.rejects(Snapshotter.open({ root: dir, log: captureLog().log, remote: failing }), (err: unknown) => err instanceof SgError && /failed to restore remote snapshot/.test(err.message));
  await assert.rejects(Snapshotter.open({ root: dir, log: captureLog().log }), /failed to restore/, 'no remote layers at all');

  const cap = captureLog();
  sn = await Snapshotter.open({ root: dir, log: cap.log, remote: failing, allowInvalidMountsOnRestart: true });
  try {
    assert.equal(cap.records().filter((r) => r.level === 'error' && /remove this snapshot manually/.test(String(r.msg))).length, 2);
    assert.equal(sn.list([]).length, 2, 'the snapshots stay listed');
    await assert.rejects(sn.prepare('ctr', 'sha256:c2', {}), (err: unknown) => err instanceof SgError && err.code === 'UNAVAILABLE');
  } finally {
    await sn.close();
    await sn.close();
  }
});

async function fallbacks(reason: string): Promise<number> {
  const m = await registry.getSingleMetric('stargz_ipfs_remote_snapshot_fallbacks_total')!.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 20));
  }
}
