/**
 * A port of containerd's snapshotter test suite (core/snapshots/testsuite: testsuite.go,
 * issues.go) run against our daemon as a real process, through its gRPC socket with a
 * grpc-js client. Like containerd's makeTest, every case gets a fresh daemon and root.
 * Skipped from the suite: Rename of a lower directory (overlayfs without redirect_dir,
 * which containerd also skips for "overlayfs") and CloseTwice (an in-process API; see
 * snapshotter-remote.test.ts). Cases after the port cover our own contract.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chown, link, lstat, mkdir, readdir, readFile, readlink, rename, rm, writeFile, chmod, symlink } from 'node:fs/promises';
import { existsSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startProc, waitFor, type Proc } from './harness/proc.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';
import type { WireMount } from '../src/service/messages.js';
import * as grpc from '@grpc/grpc-js';

const run = promisify(execFile);
const daemonJs = new URL('../src/cli/daemon.js', import.meta.url).pathname;
let scratch: string;
let seq = 0;

before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

interface Env {
  sn: SnapshotsClient;
  work: string;
  root: string;
  address: string;
}

/** A fresh daemon process (own root and socket) around `fn`, stopped even on failure. */
function suiteTest(name: string, fn: (env: Env) => Promise<void>): void {
  test(name, async () => {
    const dir = join(scratch, String(++seq));
    const root = join(dir, 'root');
    const work = join(dir, 'work');
    mkdirSync(work, { recursive: true });
    const config = join(dir, 'config.toml');
    writeFileSync(config, '');
    const address = join(dir, 's.sock');
    const proc: Proc = startProc(process.execPath, [daemonJs, '--root', root, '--address', address, '--config', config, '--log-level', 'debug'], join(dir, 'daemon.log'));
    let sn: SnapshotsClient | undefined;
    try {
      // Connect once the daemon listens: a client that finds no socket fails its first
      // calls and then backs off for a second.
      await waitFor('daemon started', 15_000, async () => {
        const log = await readFile(proc.logPath, 'utf8');
        if (proc.child.exitCode !== null) throw new Error(`daemon exited: ${log}`);
        return log.includes('"msg":"daemon started"') || undefined;
      });
      sn = connectSnapshots(address);
      await fn({ sn, work, root, address });
    } finally {
      sn?.close();
      for (const mp of mountsUnder(dir)) await run('umount', ['-l', mp]).catch(() => {});
      await proc.stop('SIGTERM', 10_000);
    }
  });
}

// ---- mounting what the service returns, as containerd's mount.All does

async function mountAll(mounts: WireMount[], target: string): Promise<void> {
  for (const m of mounts) {
    if (m.type === 'bind') {
      await run('mount', ['-o', m.options.join(','), m.source, target]);
      continue;
    }
    // containerd shortens long lowerdir lists by mounting from their common parent with
    // relative paths; 128 layers do not fit the kernel's one-page option limit otherwise.
    let options = m.options.join(',');
    let cwd: string | undefined;
    if (options.length > 4000) {
      cwd = commonDir(m.options.flatMap((o) => o.replace(/^\w+=/, '').split(':')));
      options = m.options.map((o) => o.replace(/^(\w+)=(.*)$/, (_, k: string, v: string) => `${k}=${v.split(':').map((p) => relative(cwd!, p)).join(':')}`)).join(',');
    }
    await run('mount', ['-t', m.type, '-o', options, m.source, target], cwd ? { cwd } : {});
  }
}

function commonDir(paths: string[]): string {
  let prefix = paths[0]!.split('/');
  for (const p of paths) {
    const parts = p.split('/');
    let i = 0;
    while (i < prefix.length && prefix[i] === parts[i]) i++;
    prefix = prefix.slice(0, i);
  }
  return prefix.join('/');
}

const unmount = (target: string) => run('umount', [target]);

async function prepareMount(sn: SnapshotsClient, work: string, name: string, parent: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  const mounts = await sn.prepare(dir, parent, gcRoot);
  assert.ok(mounts.length >= 1, 'expected mounts to have entries');
  await mountAll(mounts, dir);
  return dir;
}

const gcRoot = { 'containerd.io/gc.root': new Date().toISOString() };

// ---- fstest-like appliers and a directory comparison

type Applier = (root: string) => Promise<void>;
const apply =
  (...steps: Applier[]): Applier =>
  async (root) => {
    for (const s of steps) await s(root);
  };
const createFile =
  (p: string, content: string, mode: number): Applier =>
  async (r) => {
    await writeFile(join(r, p), content);
    await chmod(join(r, p), mode);
  };
const createDir =
  (p: string, mode: number): Applier =>
  async (r) => {
    await mkdir(join(r, p));
    await chmod(join(r, p), mode);
  };
const removeAll =
  (p: string): Applier =>
  (r) =>
    rm(join(r, p), { recursive: true, force: true });
const chownTo =
  (p: string, uid: number, gid: number): Applier =>
  (r) =>
    chown(join(r, p), uid, gid);
const hardLink =
  (from: string, to: string): Applier =>
  (r) =>
    link(join(r, from), join(r, to));
const renameTo =
  (from: string, to: string): Applier =>
  (r) =>
    rename(join(r, from), join(r, to));
const symlinkTo =
  (target: string, p: string): Applier =>
  (r) =>
    symlink(target, join(r, p));

/** Every entry below `root`: type, permission bits, owner, content or link target. */
async function describeTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? `link→${await readlink(p)}` : st.isFile() ? `file:${(await readFile(p)).toString('base64')}` : 'other';
      out.set(relative(root, p), `${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

async function assertSameTree(expected: string, actual: string, what: string): Promise<void> {
  assert.deepEqual(Object.fromEntries(await describeTree(actual)), Object.fromEntries(await describeTree(expected)), what);
}

/** containerd's checkSnapshots: each applier on a flat dir and on a snapshot chain, compared. */
async function checkSnapshots({ sn, work }: Env, ...appliers: Applier[]): Promise<void> {
  const flat = join(work, 'flat');
  await mkdir(flat, { recursive: true });
  let parent = '';
  for (const [i, applier] of appliers.entries()) {
    const preparing = await prepareMount(sn, work, `preparing-${i}`, parent);
    try {
      await applier(flat);
      await applier(preparing);
      await assertSameTree(flat, preparing, `layer ${i}`);
    } finally {
      await unmount(preparing);
    }
    parent = join(work, `committed-${i}`);
    await sn.commit(parent, preparing, gcRoot);
  }
  const view = join(work, 'view');
  await mkdir(view);
  await mountAll(await sn.view(view, parent, gcRoot), view);
  try {
    await assertSameTree(flat, view, 'view of the chain');
  } finally {
    await unmount(view);
  }
}

const grpcCode = (code: grpc.status) => (err: unknown) => (err as grpc.ServiceError).code === code;

// ---- containerd testsuite.go

suiteTest('Basic: prepare, commit, view a chain; remove refuses a parent', async ({ sn, work }) => {
  const initial = apply(createFile('foo', 'foo\n', 0o777), createDir('a', 0o755), createDir('a/b', 0o755), createDir('a/b/c', 0o755));
  const diff = apply(createFile('bar', 'bar\n', 0o777), createFile('foo', 'bar\n', 0o777), removeAll('a/b'));
  const expectedInitial = join(work, 'expected-initial');
  const expectedBoth = join(work, 'expected-both');
  await mkdir(expectedInitial);
  await mkdir(expectedBoth);
  await initial(expectedInitial);
  await initial(expectedBoth);
  await diff(expectedBoth);

  const preparing = await prepareMount(sn, work, 'preparing', '');
  await initial(preparing);
  await unmount(preparing);
  const committed = join(work, 'committed');
  await sn.commit(committed, preparing, gcRoot);
  const si = await sn.stat(committed);
  assert.equal(si.parent, '');
  assert.equal(si.kind, 'COMMITTED');
  await assert.rejects(sn.stat(preparing), grpcCode(grpc.status.NOT_FOUND), 'the key is gone after Commit');

  const next = await prepareMount(sn, work, 'nextlayer', committed);
  await assertSameTree(expectedInitial, next, 'next layer sees the committed one');
  await diff(next);
  await unmount(next);
  const ni = await sn.stat(next);
  assert.equal(ni.parent, committed);
  assert.equal(ni.kind, 'ACTIVE');
  const nextCommitted = join(work, 'committed-next');
  await sn.commit(nextCommitted, next, gcRoot);
  const si2 = await sn.stat(nextCommitted);
  assert.equal(si2.parent, committed);
  assert.equal(si2.kind, 'COMMITTED');
  await assert.rejects(sn.stat(next), grpcCode(grpc.status.NOT_FOUND));

  const walked = new Map((await sn.list()).infos.map((i) => [i.name, i]));
  assert.deepEqual(walked.get(committed), si);
  assert.deepEqual(walked.get(nextCommitted), si2);

  const nextnext = join(work, 'nextnextlayer');
  await mkdir(nextnext);
  await mountAll(await sn.view(nextnext, nextCommitted, gcRoot), nextnext);
  await assertSameTree(expectedBoth, nextnext, 'view of both layers');
  await unmount(nextnext);
  await sn.remove(nextnext);

  await assert.rejects(sn.remove(committed), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && /remove/.test(err.details));
  await sn.remove(nextCommitted);
  await sn.remove(committed);
});

suiteTest('StatActive and StatCommitted', async ({ sn, work }) => {
  const preparing = await prepareMount(sn, work, 'preparing', '');
  await writeFile(join(preparing, 'foo'), 'foo\n');
  let si = await sn.stat(preparing);
  assert.deepEqual([si.name, si.kind, si.parent], [preparing, 'ACTIVE', '']);
  await unmount(preparing);
  const committed = join(work, 'committed');
  await sn.commit(committed, preparing, gcRoot);
  si = await sn.stat(committed);
  assert.deepEqual([si.name, si.kind, si.parent], [committed, 'COMMITTED', '']);
});

suiteTest('Transitivity: A <- B, parent of B is A, A has none', async ({ sn, work }) => {
  const preparing = await prepareMount(sn, work, 'preparing', '');
  await writeFile(join(preparing, 'foo'), 'foo\n');
  await unmount(preparing);
  const snapA = join(work, 'snapA');
  await sn.commit(snapA, preparing, gcRoot);
  const next = await prepareMount(sn, work, 'next', snapA);
  await writeFile(join(next, 'foo'), 'foo bar\n');
  await unmount(next);
  const snapB = join(work, 'snapB');
  await sn.commit(snapB, next, gcRoot);
  const siA = await sn.stat(snapA);
  const siB = await sn.stat(snapB);
  const siParentB = await sn.stat(siB.parent);
  assert.equal(siA.parent, '');
  assert.equal(siB.parent, snapA);
  assert.equal(siParentB.parent, '');
});

suiteTest('PrepareView: the same key twice fails, in any combination', async ({ sn, work }) => {
  const preparing = await prepareMount(sn, work, 'preparing', '');
  await unmount(preparing);
  const snapA = join(work, 'snapA');
  await sn.commit(snapA, preparing, gcRoot);
  const exists = grpcCode(grpc.status.ALREADY_EXISTS);
  await sn.prepare('newlayer', snapA, gcRoot);
  await assert.rejects(sn.view('newlayer', snapA, gcRoot), exists);
  await sn.prepare('prepLayer', snapA, gcRoot);
  await assert.rejects(sn.prepare('prepLayer', snapA, gcRoot), exists);
  await sn.view('viewLayer', snapA, gcRoot);
  await assert.rejects(sn.view('viewLayer', snapA, gcRoot), exists);
});

async function baseTestSnapshots(sn: SnapshotsClient): Promise<void> {
  await sn.prepare('c1-a', '', gcRoot);
  await sn.commit('c1', 'c1-a', gcRoot);
  await sn.prepare('c2-a', 'c1', gcRoot);
  await sn.commit('c2', 'c2-a', gcRoot);
  await sn.prepare('a1', 'c2', gcRoot);
  await sn.prepare('a2', '', gcRoot);
  await sn.view('v1', 'c2', gcRoot);
  await sn.view('v2', '', gcRoot);
}

const micros = (t: { seconds: number; nanos: number } | null): number => (t ? t.seconds * 1e6 + t.nanos / 1000 : NaN);

suiteTest('Update: labels replaced, single labels set and deleted, immutable fields refused', async ({ sn }) => {
  const t1 = Date.now() * 1000;
  await baseTestSnapshots(sn);
  const t2 = Date.now() * 1000;
  const cases = [
    { name: 'c1', kind: 'COMMITTED', parent: '' },
    { name: 'c2', kind: 'COMMITTED', parent: 'c1' },
    { name: 'a1', kind: 'ACTIVE', parent: 'c2' },
    { name: 'a2', kind: 'ACTIVE', parent: '' },
    { name: 'v1', kind: 'VIEW', parent: 'c2' },
    { name: 'v2', kind: 'VIEW', parent: '' },
  ];
  for (const tc of cases) {
    let st = await sn.stat(tc.name);
    const created = micros(st.created_at);
    assert.ok(created >= t1 && created <= t2, `${tc.name}: created within the test`);
    assert.deepEqual(st.updated_at, st.created_at);
    assert.deepEqual([st.kind, st.parent, st.name], [tc.kind, tc.parent, tc.name]);

    const rootTime = new Date().toISOString();
    let expected: Record<string, string> = { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': rootTime };
    const u1 = Date.now() * 1000;
    st = await sn.update({ ...st, parent: 'doesnotexist', labels: expected } as never);
    const u2 = Date.now() * 1000;
    assert.equal(micros(st.created_at), created);
    assert.ok(micros(st.updated_at) >= u1 && micros(st.updated_at) <= u2, `${tc.name}: updated time moves`);
    assert.deepEqual([st.kind, st.parent, st.name], [tc.kind, tc.parent, tc.name], 'no mask: only labels change');
    assert.deepEqual(st.labels, expected);

    expected = { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': rootTime };
    st = await sn.update({ name: tc.name, labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
    assert.deepEqual(st.labels, expected);

    expected = { l4: 'v4', 'containerd.io/gc.root': rootTime };
    st = await sn.update({ name: tc.name, labels: expected }, ['labels']);
    assert.deepEqual(st.labels, expected);

    await assert.rejects(sn.update({ name: tc.name, labels: {} }, ['parent']), grpcCode(grpc.status.INVALID_ARGUMENT));
  }
});

suiteTest('Remove: a removed key can be used again, for any kind', async ({ sn }) => {
  await sn.prepare('committed-a', '', gcRoot);
  await sn.commit('committed-1', 'committed-a', gcRoot);
  await sn.prepare('reuse-1', 'committed-1', gcRoot);
  await sn.remove('reuse-1');
  await sn.view('reuse-1', 'committed-1', gcRoot);
  await sn.remove('reuse-1');
  await sn.prepare('reuse-1', '', gcRoot);
  await sn.remove('committed-1');
  await sn.commit('committed-1', 'reuse-1', gcRoot);
});

suiteTest('Walk: containerd filter syntax over kind, name, parent and labels', async ({ sn }) => {
  const opt = { 'containerd.io/gc.root': 'check-walk' };
  const wl = (l: string) => ({ l, ...opt });
  await sn.prepare('a-np', '', opt);
  await sn.prepare('p-tmp', '', opt);
  await sn.commit('p', 'p-tmp', opt);
  await sn.prepare('a', 'p', opt);
  await sn.view('v', 'p', opt);
  await sn.prepare('p-wl-tmp', '', opt);
  await sn.commit('p-wl', 'p-wl-tmp', wl('1'));
  await sn.prepare('a-wl', 'p-wl', wl('2'));
  await sn.view('v-wl', 'p-wl', wl('3'));
  await sn.prepare('a-np-wl', '', wl('2'));
  const cases: [string[], string[]][] = [
    [['labels."containerd.io/gc.root"==check-walk'], ['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl']],
    [['kind==active,labels."containerd.io/gc.root"==check-walk'], ['a-np', 'a', 'a-wl', 'a-np-wl']],
    [['kind==view,labels."containerd.io/gc.root"==check-walk'], ['v', 'v-wl']],
    [['kind==committed,labels."containerd.io/gc.root"==check-walk'], ['p', 'p-wl']],
    [['name==p', 'name==a-np-wl'], ['p', 'a-np-wl']],
    [['name==a-wl,labels.l'], ['a-wl']],
    [['parent==p'], ['a', 'v']],
    [['parent!="",labels."containerd.io/gc.root"==check-walk'], ['a', 'v', 'a-wl', 'v-wl']],
    [['labels.l'], ['p-wl', 'a-wl', 'v-wl', 'a-np-wl']],
    [['labels.l==2'], ['a-wl', 'a-np-wl']],
  ];
  for (const [filters, names] of cases) {
    const got = (await sn.list(filters)).infos.map((i) => i.name).sort();
    assert.deepEqual(got, [...names].sort(), filters.join(' OR '));
  }
});

// ---- containerd issues.go and the fs cases of testsuite.go

suiteTest('LayerFileUpdate', (env) =>
  checkSnapshots(
    env,
    apply(createDir('etc', 0o700), createFile('etc/hosts', 'mydomain 10.0.0.1', 0o644), createFile('etc/profile', 'PATH=/usr/bin', 0o644)),
    apply(createFile('etc/hosts', 'mydomain 10.0.0.2', 0o644), createFile('etc/profile', 'PATH=/usr/bin', 0o666), createDir('root', 0o700), createFile('root/.bashrc', 'PATH=/usr/sbin:/usr/bin', 0o644)),
  ),
);

suiteTest('RemoveDirectoryInLowerLayer', (env) =>
  checkSnapshots(
    env,
    apply(createDir('lib', 0o700), createFile('lib/hidden', '', 0o644)),
    apply(removeAll('lib'), createDir('lib', 0o700), createFile('lib/not-hidden', '', 0o644)),
    apply(createFile('lib/newfile', '', 0o644)),
  ),
);

suiteTest('Chown', (env) =>
  checkSnapshots(
    env,
    apply(createDir('opt', 0o700), createDir('opt/a', 0o700), createDir('opt/a/b', 0o700), createFile('opt/a/b/file.txt', 'hello', 0o644)),
    apply(chownTo('opt', 1, 1), chownTo('opt/a', 1, 1), chownTo('opt/a/b', 1, 1), chownTo('opt/a/b/file.txt', 1, 1)),
  ),
);

suiteTest('Rename of files (directory rename needs redirect_dir, skipped as for overlayfs)', (env) =>
  checkSnapshots(
    env,
    apply(createDir('dir1', 0o700), createDir('somefiles', 0o700), createFile('somefiles/f1', 'was here first!', 0o644), createFile('somefiles/f2', 'nothing interesting', 0o644)),
    apply(createFile('somefiles/f1-overwrite', 'new content 1', 0o644), renameTo('somefiles/f1-overwrite', 'somefiles/f1'), renameTo('somefiles/f2', 'somefiles/f3')),
  ),
);

suiteTest('DirectoryPermissionOnCommit', (env) =>
  checkSnapshots(
    env,
    apply(
      createDir('dir1', 0o700),
      createDir('dir2', 0o700),
      createDir('dir3', 0o700),
      createDir('dir4', 0o700),
      createFile('dir4/f1', '...', 0o644),
      createDir('dir5', 0o700),
      createFile('dir5/f1', '...', 0o644),
      chownTo('dir1', 1, 1),
      chownTo('dir2', 1, 1),
      chownTo('dir3', 1, 1),
      chownTo('dir5', 1, 1),
      chownTo('dir5/f1', 1, 1),
    ),
    apply(chownTo('dir2', 0, 0), removeAll('dir3'), chownTo('dir4', 1, 1), chownTo('dir4/f1', 1, 1)),
    apply(createDir('dir3', 0o700), chownTo('dir3', 1, 1), removeAll('dir5'), createDir('dir5', 0o700), chownTo('dir5', 1, 1)),
  ),
);

suiteTest('DeletedFilesInChildSnapshot', (env) =>
  checkSnapshots(env, apply(createFile('foo', 'foo\n', 0o777), createFile('foobar', 'foobar\n', 0o777)), apply(removeAll('foobar')), apply()),
);

suiteTest('MoveFileFromLowerLayer (hard link, then delete the source)', (env) =>
  checkSnapshots(
    env,
    apply(createDir('dir1', 0o700), createFile('dir1/f1', 'Hello', 0o644), createDir('dir2', 0o700), createFile('dir2/f2', '...', 0o644), symlinkTo('dir1/f1', 'ln')),
    apply(createDir('dir3', 0o700), createFile('dir3/f1', 'Hello', 0o644), removeAll('dir1'), hardLink('dir2/f2', 'dir3/f2'), removeAll('dir2/f2')),
  ),
);

suiteTest('RemoveIntermediateSnapshot: only leaf-first removal succeeds', async ({ sn, work }) => {
  const base = await prepareMount(sn, work, 'base', '');
  await unmount(base);
  const committedBase = join(work, 'committed-base');
  await sn.commit(committedBase, base, gcRoot);
  const intermediate = join(work, 'intermediate');
  await sn.prepare(intermediate, committedBase, gcRoot);
  const committedInter = join(work, 'committed-inter');
  await sn.commit(committedInter, intermediate, gcRoot);
  const top = join(work, 'toplayer');
  await sn.prepare(top, committedInter, gcRoot);
  await assert.rejects(sn.remove(committedInter), grpcCode(grpc.status.FAILED_PRECONDITION));
  await sn.remove(top);
  await sn.remove(committedInter);
  await sn.remove(committedBase);
});

suiteTest('ViewReadonly: a view cannot be written', async ({ sn, work }) => {
  const preparing = join(work, 'preparing');
  await sn.prepare(preparing, '', gcRoot);
  const committed = join(work, 'committed');
  await sn.commit(committed, preparing, gcRoot);
  const view = join(work, 'view');
  const mp = join(work, 'view-mount');
  await mkdir(mp);
  await mountAll(await sn.view(view, committed, gcRoot), mp);
  try {
    await assert.rejects(writeFile(join(mp, 'testfile'), 'testcontent'), /EROFS/);
  } finally {
    await unmount(mp);
  }
  await sn.remove(view);
  await sn.remove(committed);
});

suiteTest('StatInWalk: Stat answers the same as List', async ({ sn }) => {
  const p = 'stats-in-walk-';
  await sn.prepare(`${p}c1-a`, '', gcRoot);
  await sn.commit(`${p}c1`, `${p}c1-a`, gcRoot);
  await sn.prepare(`${p}c2-a`, `${p}c1`, gcRoot);
  await sn.commit(`${p}c2`, `${p}c2-a`, gcRoot);
  await sn.prepare(`${p}a1`, `${p}c2`, gcRoot);
  await sn.view(`${p}v1`, `${p}c2`, gcRoot);
  const { infos } = await sn.list();
  assert.equal(infos.length, 4);
  for (const info of infos) assert.deepEqual(await sn.stat(info.name), info);
});

suiteTest('RootPermission: the root of a new snapshot is 0755', async ({ sn, work }) => {
  const preparing = await prepareMount(sn, work, 'preparing', '');
  try {
    assert.equal((await lstat(preparing)).mode & 0o777, 0o755);
  } finally {
    await unmount(preparing);
  }
});

suiteTest('128LayersMount: a view of 128 layers equals the flat result', async (env) => {
  const layers: Applier[] = [
    apply(createFile('bottom', 'way at the bottom\n', 0o777), createFile('overwriteme', 'FIRST!\n', 0o777), createDir('addhere', 0o755), createDir('onlyme', 0o755), createFile('onlyme/bottom', 'bye!\n', 0o777)),
  ];
  for (let i = 1; i <= 127; i++) {
    layers.push(
      apply(createFile('overwriteme', `${i} WAS HERE!\n`, 0o777), createFile(`addhere/file-${i}`, 'same\n', 0o755), removeAll('onlyme'), createDir('onlyme', 0o755), createFile(`onlyme/file-${i}`, 'only me!\n', 0o777)),
    );
  }
  // Layers are applied straight into their upper dirs (no mount per layer, unlike the
  // original): the point here is the 128-deep overlay of the final view.
  const { sn, work, root } = env;
  const flat = join(work, 'flat');
  await mkdir(flat);
  let parent = '';
  for (const [i, layer] of layers.entries()) {
    const key = `prepare-layer-${i}`;
    const mounts = await sn.prepare(key, parent, gcRoot);
    const upper = i === 0 ? mounts[0]!.source : mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
    assert.ok(upper.startsWith(join(root, 'snapshotter', 'snapshots')));
    await layer(flat);
    if (i === 0) await layer(upper);
    else await overlayApply(mounts, work, layer);
    parent = `committed-${i}`;
    await sn.commit(parent, key, gcRoot);
  }
  const view = join(work, 'fullview');
  await mkdir(view);
  const mounts = await sn.view(view, parent, gcRoot);
  assert.equal(mounts[0]!.options[0]!.split(':').length, 128);
  await mountAll(mounts, view);
  try {
    await assertSameTree(flat, view, '128-layer view');
  } finally {
    await unmount(view);
  }
});

/** Applies a layer through its overlay mount, so that deletions become whiteouts. */
async function overlayApply(mounts: WireMount[], work: string, layer: Applier): Promise<void> {
  const mp = join(work, 'apply');
  await mkdir(mp, { recursive: true });
  await mountAll(mounts, mp);
  try {
    await layer(mp);
  } finally {
    await unmount(mp);
  }
}

// ---- our contract beyond the suite

suiteTest('errors: stat of a missing key, commit twice, commit of a view, bad parents', async ({ sn }) => {
  await assert.rejects(sn.stat('missing'), grpcCode(grpc.status.NOT_FOUND));
  await assert.rejects(sn.mounts('missing'), grpcCode(grpc.status.NOT_FOUND));
  await assert.rejects(sn.remove('missing'), grpcCode(grpc.status.NOT_FOUND));
  await assert.rejects(sn.prepare('x', 'missing-parent'), grpcCode(grpc.status.NOT_FOUND));
  await sn.prepare('a', '');
  await assert.rejects(sn.prepare('b', 'a'), grpcCode(grpc.status.INVALID_ARGUMENT), 'an active parent');
  await sn.commit('c', 'a');
  await assert.rejects(sn.commit('c', 'a'), grpcCode(grpc.status.ALREADY_EXISTS), 'commit twice');
  await assert.rejects(sn.mounts('c'), grpcCode(grpc.status.FAILED_PRECONDITION), 'a committed snapshot has no mounts');
  await sn.view('v', 'c');
  await assert.rejects(sn.commit('c2', 'v'), grpcCode(grpc.status.FAILED_PRECONDITION), 'a view cannot be committed');
  await assert.rejects(sn.prepare('', ''), grpcCode(grpc.status.INVALID_ARGUMENT));
  await assert.rejects(sn.prepare('big', '', { k: 'x'.repeat(4096) }), grpcCode(grpc.status.INVALID_ARGUMENT));
  await assert.rejects(sn.list(['kind=active']), grpcCode(grpc.status.INVALID_ARGUMENT));
});

suiteTest('Mounts returns what Prepare and View returned', async ({ sn }) => {
  const base = await sn.prepare('base', '');
  assert.deepEqual(await sn.mounts('base'), base);
  await sn.commit('c', 'base');
  const a = await sn.prepare('a', 'c');
  assert.deepEqual(await sn.mounts('a'), a);
  const v = await sn.view('v', 'c');
  assert.deepEqual(await sn.mounts('v'), v);
  assert.deepEqual(v, [{ type: 'bind', source: base[0]!.source, target: '', options: ['ro', 'rbind'] }]);
});

suiteTest('Usage: scanned for active snapshots, stored at commit, hard links once', async ({ sn }) => {
  const [m] = await sn.prepare('a', '');
  const upper = m!.source;
  const empty = await sn.usage('a');
  assert.equal(empty.inodes, 1);
  await writeFile(join(upper, 'f'), Buffer.alloc(64 * 1024, 1));
  await link(join(upper, 'f'), join(upper, 'hard'));
  await mkdir(join(upper, 'd'));
  const used = await sn.usage('a');
  assert.equal(used.inodes, 3, 'root, f (twice linked), d');
  assert.ok(used.size >= empty.size + 64 * 1024, `size ${used.size}`);
  await sn.commit('c', 'a');
  assert.deepEqual(await sn.usage('c'), used);
});

suiteTest('Commit with a parent rebases a parentless snapshot (containerd 2.x)', async ({ sn }) => {
  await sn.prepare('p-a', '');
  await sn.commit('p', 'p-a');
  await sn.prepare('x', '');
  await sn.commit('x-c', 'x', {}, 'p');
  assert.equal((await sn.stat('x-c')).parent, 'p');
  await sn.prepare('y', 'p');
  await sn.prepare('q-a', '');
  await sn.commit('q', 'q-a');
  await assert.rejects(sn.commit('y-c', 'y', {}, 'q'), grpcCode(grpc.status.INVALID_ARGUMENT), 'an existing parent does not change');
});

suiteTest('List streams at most 100 infos per message', async ({ sn }) => {
  for (let i = 0; i < 250; i++) await sn.view(`v${i}`, '', { n: String(i % 2) });
  const all = await sn.list();
  assert.deepEqual([all.infos.length, all.messages], [250, 3]);
  const odd = await sn.list(['labels.n==1']);
  assert.deepEqual([odd.infos.length, odd.messages], [125, 2]);
});

suiteTest('Remove deletes the directory; Cleanup deletes orphans and keeps live ones', async ({ sn, root }) => {
  const dir = join(root, 'snapshotter', 'snapshots');
  await sn.prepare('a', '');
  await sn.prepare('b', '');
  assert.deepEqual(readdirSync(dir).sort(), ['1', '2']);
  await sn.remove('a');
  assert.deepEqual(readdirSync(dir), ['2']);
  mkdirSync(join(dir, '99', 'fs'), { recursive: true });
  mkdirSync(join(dir, 'new-abc'));
  await sn.cleanup();
  assert.deepEqual(readdirSync(dir), ['2']);
  assert.ok(existsSync(join(dir, '2', 'fs')));
});

suiteTest('an unknown method of the service answers UNIMPLEMENTED', async ({ address }) => {
  const client = new grpc.Client(`unix:${address}`, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/containerd.services.snapshots.v1.Snapshots/Rename', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e!)),
    );
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  } finally {
    client.close();
  }
});
