/**
 * Compatibility with the clients users already have, on containerd 2.2.9 (built from its
 * Go module as shared/README.md says; scripts/install-tools.sh) and nerdctl 2.0.4:
 * - our `image rpull --ipfs CID` + `ctr run --snapshotter stargz` against containerd 2.2.9;
 * - `nerdctl --snapshotter=stargz pull ipfs://CID` and `run --rm --net none ipfs://CID …`
 *   lazily through our daemon (nerdctl's own IPFS resolver and CRI-style labels);
 * - `nerdctl run ipfs://CID` (overlayfs, nerdctl fetching every blob) of an image pushed
 *   by our ipfs-push.
 * Skipped when the tool builds are missing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { startDaemon, type DaemonProc } from './harness/daemon.js';
import { buildImage } from './harness/push-fixtures.js';
import { waitFor } from './harness/proc.js';
import { cidOf, daemonConfig, runCli, seededBytes, sha256Hex } from './harness/e2e-image.js';

const execFileAsync = promisify(execFile);
const TOOLS = process.env.SGIPFS_TOOLS_DIR ?? '/root/go/sgipfs-tools';
const CTD_DIR = join(TOOLS, 'containerd-2.2.9');
const NERDCTL = join(TOOLS, 'nerdctl-2.0.4', 'nerdctl');
const have = existsSync(join(CTD_DIR, 'containerd')) && existsSync(join(CTD_DIR, 'containerd-shim-runc-v2')) && existsSync(NERDCTL);
const skip = have ? false : `containerd 2.2.9 / nerdctl 2.0.4 builds not found under ${TOOLS} (scripts/install-tools.sh)`;

const FILE_TEXT = 'hello from containerd 2\n';
const BIG = seededBytes(3 * 1024 * 1024 + 7, 'e2e-containerd2');

let scratch: string;
let kubo: KuboNode;
let daemon: DaemonProc;
let ctd: Containerd;
let env: NodeJS.ProcessEnv;
let cid: string;
let imageTar: string;
let runs = 0;
/** ctr and nerdctl keep container IO fifos under /run/containerd/fifo whatever the state dir is. */
const FIFO_DIR = '/run/containerd/fifo';
const listFifos = (): string[] => (existsSync(FIFO_DIR) ? readdirSync(FIFO_DIR) : []);
let fifosBefore: string[] = [];

before(async () => {
  if (!have) return;
  reapStale();
  fifosBefore = listFifos();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  env = { IPFS_PATH: kubo.ipfsPath };
  daemon = await startDaemon(scratch, { config: daemonConfig('no_background_fetch = true\n'), env });
  ctd = await startContainerd(scratch, {
    stargzSocket: daemon.socket,
    stargzRoot: daemon.root,
    containerdBin: join(CTD_DIR, 'containerd'),
    ctrBin: join(CTD_DIR, 'ctr'),
    shimDir: CTD_DIR,
  });
  const dir = join(scratch, 'image');
  mkdirSync(dir);
  const built = await buildImage(dir, { name: 'example.com/sgt/e2e2:1', layers: [{ 'data/file': FILE_TEXT, 'data/big.bin': BIG }] });
  imageTar = built.tarPath;
  await ctd.ctr(['images', 'import', built.tarPath]);
  cid = cidOf(await runCli(['image', 'ipfs-push', '--quiet', '--address', ctd.address, '--namespace', ctd.namespace, built.name], env));
  for (const name of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', name]);
});

after(async () => {
  if (!have) return;
  await ctd?.stop();
  await daemon?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
  for (const d of listFifos()) if (!fifosBefore.includes(d)) rmSync(join(FIFO_DIR, d), { recursive: true, force: true });
});

const expected = `${sha256Hex(Buffer.from(FILE_TEXT))}  /data/file\n${sha256Hex(BIG)}  /data/big.bin\n`;
const fuseMounts = () => mountsUnder(daemon.root).filter((m) => m.endsWith('/fs')).length;

async function nerdctl(args: string[]): Promise<string> {
  const global = ['--address', ctd.address, '--namespace', ctd.namespace, '--data-root', join(scratch, 'nerdctl'), '--cgroup-manager', 'cgroupfs'];
  try {
    const { stdout } = await execFileAsync(NERDCTL, [...global, ...args], { env: { ...process.env, ...env, PATH: `${CTD_DIR}:${process.env.PATH ?? ''}` }, timeout: 180_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`nerdctl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

async function clean(): Promise<void> {
  for (const name of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', name]);
  await waitFor('snapshots collected', 30_000, async () => ((await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).trim().split('\n').length === 1 ? true : undefined));
  await waitFor('FUSE mounts gone', 30_000, () => (fuseMounts() === 0 ? true : undefined));
}

test('containerd 2.2.9: rpull --ipfs CID then ctr run --snapshotter stargz, lazily', { skip }, async () => {
  const r = await runCli(['image', 'rpull', '--ipfs', '--address', ctd.address, '--namespace', ctd.namespace, cid], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  const out = await ctd.ctr(['run', '--rm', '--snapshotter', 'stargz', cid, `sgt-c2-${process.pid}-${++runs}`, '/bin/sha256sum', '/data/file', '/data/big.bin']);
  assert.equal(out, expected);
  assert.equal(fuseMounts(), 2);
  await clean();
});

test('nerdctl 2.0.4: --snapshotter=stargz pull ipfs://CID and run --rm --net none, lazily through our daemon', { skip }, async () => {
  await nerdctl(['--snapshotter', 'stargz', 'pull', `ipfs://${cid}`]);
  assert.equal(fuseMounts(), 2, 'both layers are remote snapshots');
  const info = JSON.parse(await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'info', (await ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls'])).split('\n')[1]!.split(/\s+/)[0]!])) as { Labels?: Record<string, string> };
  assert.equal(info.Labels?.['containerd.io/snapshot/remote'], 'remote snapshot');
  const out = await nerdctl(['--snapshotter', 'stargz', 'run', '--rm', '--net', 'none', `ipfs://${cid}`, '/bin/sha256sum', '/data/file', '/data/big.bin']);
  assert.equal(out, expected);
  await clean();
});

test('nerdctl 2.0.4: run ipfs://CID (overlayfs, full pull) of an image pushed by our ipfs-push', { skip }, async () => {
  const out = await nerdctl(['run', '--rm', '--net', 'none', `ipfs://${cid}`, '/bin/cat', '/data/file']);
  assert.equal(out, FILE_TEXT);
  assert.equal(fuseMounts(), 0);
  await clean();
});

test('nerdctl 2.0.4: an image pushed by `nerdctl push --estargz ipfs://` runs lazily through our daemon', { skip }, async () => {
  await ctd.ctr(['images', 'import', imageTar]);
  const pushed = await nerdctl(['push', '--estargz', 'ipfs://example.com/sgt/e2e2:1']);
  const nerdCid = /(b[a-z2-7]{50,})\s*$/.exec(pushed.trim())?.[1];
  assert.ok(nerdCid, pushed);
  await clean();
  const r = await runCli(['image', 'rpull', '--ipfs', '--address', ctd.address, '--namespace', ctd.namespace, nerdCid], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 lazy, 0 pulled/);
  const out = await nerdctl(['--snapshotter', 'stargz', 'run', '--rm', '--net', 'none', `ipfs://${nerdCid}`, '/bin/sha256sum', '/data/file', '/data/big.bin']);
  assert.equal(out, expected);
  await clean();
});
