/**
 * End to end with Debian's containerd 1.6 and runc: our daemon runs as a real process and
 * containerd reaches it through `[proxy_plugins.stargz]`. An image is imported and
 * unpacked into our snapshots, a container runs on them, and containerd's garbage
 * collector removes everything again through our Remove and Cleanup.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startProc, waitFor, type Proc } from './harness/proc.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { buildBusyboxImage, type BuiltImage } from './harness/busybox-image.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';

const daemonJs = new URL('../src/cli/daemon.js', import.meta.url).pathname;
let scratch: string;
let daemon: Proc | undefined;
let ctd: Containerd | undefined;
let sn: SnapshotsClient | undefined;
let img: BuiltImage;
let root: string;

before(async () => {
  reapStale();
  scratch = makeScratch();
  root = join(scratch, 'root');
  const socket = join(scratch, 'sn', 's.sock');
  const config = join(scratch, 'config.toml');
  writeFileSync(config, '');
  mkdirSync(join(scratch, 'logs'));
  daemon = startProc(process.execPath, [daemonJs, '--root', root, '--address', socket, '--config', config, '--log-level', 'debug'], join(scratch, 'logs', 'daemon.log'));
  await waitFor('daemon started', 15_000, () => {
    const log = readFileSync(daemon!.logPath, 'utf8');
    if (daemon!.child.exitCode !== null) throw new Error(log);
    return log.includes('"msg":"daemon started"') || undefined;
  });
  sn = connectSnapshots(socket);
  ctd = await startContainerd(scratch, { stargzSocket: socket });
  img = buildBusyboxImage(scratch);
});

after(async () => {
  sn?.close();
  await ctd?.stop();
  await daemon?.stop('SIGTERM', 10_000);
  destroyScratch(scratch);
});

const lines = (s: string): string[] => s.trim().split('\n').filter(Boolean);

test('ctr images import --snapshotter stargz unpacks into our snapshots', async () => {
  await ctd!.ctr(['images', 'import', '--snapshotter', 'stargz', img.tarPath]);
  const ls = lines(await ctd!.ctr(['snapshots', '--snapshotter', 'stargz', 'ls']));
  assert.equal(ls.length, 2, ls.join('\n'));
  assert.match(ls[1]!, /^sha256:[0-9a-f]{64}\s+Committed$/);
  const key = ls[1]!.split(/\s+/)[0]!;
  const info = JSON.parse(await ctd!.ctr(['snapshots', '--snapshotter', 'stargz', 'info', key])) as { Kind: string; Name: string };
  assert.equal(info.Name, key);
  assert.equal(info.Kind, 'Committed');

  // What containerd stored in our backend: one committed layer, named in its namespace.
  const { infos } = await sn!.list();
  assert.equal(infos.length, 1);
  assert.equal(infos[0]!.kind, 'COMMITTED');
  assert.ok(infos[0]!.name.startsWith(`${ctd!.namespace}/`), infos[0]!.name);
  assert.ok(infos[0]!.name.endsWith(key), 'backend name ends with the chainID');
});

test('ctr run --snapshotter stargz prints hello from an overlay of our snapshots', async () => {
  const out = await ctd!.ctr(['run', '--rm', '--snapshotter', 'stargz', img.name, 'hello-sg', '/bin/echo', 'hello']);
  assert.equal(out.trim(), 'hello');
  const out2 = await ctd!.ctr(['run', '--rm', '--snapshotter', 'stargz', img.name, 'hello-sg2', '/bin/sh', '-c', 'echo hi > /tmp-file && cat /tmp-file && ls /bin/busybox']);
  assert.deepEqual(lines(out2), ['hi', '/bin/busybox'], 'the rootfs is writable and sees the layer');
  assert.equal(lines(await ctd!.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).length, 2, 'containerd forgot the container snapshots');
  // containerd removes them from the backend at its next garbage collection.
  await waitFor('container snapshots removed from the backend', 15_000, async () => ((await sn!.list()).infos.length === 1 ? true : undefined));
});

test('image rm and garbage collection leave no snapshot, directory or mount behind', async () => {
  await ctd!.ctr(['images', 'rm', '--sync', img.name]);
  await waitFor('snapshots collected', 30_000, async () => {
    const left = lines(await ctd!.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).slice(1);
    return left.length === 0 ? true : undefined;
  });
  await waitFor('backend empty', 10_000, async () => ((await sn!.list()).infos.length === 0 ? true : undefined));
  await waitFor('directories deleted', 10_000, () => (readdirSync(join(root, 'snapshotter', 'snapshots')).length === 0 ? true : undefined));
  assert.deepEqual(mountsUnder(root), []);
});
