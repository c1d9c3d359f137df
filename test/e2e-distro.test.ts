/**
 * A real distribution image, not one made of test files: a Debian 12 minbase root
 * (debootstrap from the Debian mirror, ~200 MB, ~4,900 files with real owners, modes,
 * symlinks and hardlinks) plus a layer with a whiteout, an opaque directory, a hardlink
 * pair, a setuid file and a symlink. Pushed with ipfs-push, then run twice from its CID:
 * lazily through our daemon (`--snapshotter stargz`) and fully pulled (`overlayfs`). The
 * same script must print the same thing in both: every file's sha256 and every entry's
 * type, mode, owner, link count, size and link target, plus what the top layer changes.
 * (Directory sizes and sub-second mtimes are left out: through the TOC they are 0 and
 * whole seconds, as with upstream.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { startDaemon, type DaemonProc } from './harness/daemon.js';
import { cidOf, daemonConfig, runCli } from './harness/e2e-image.js';

const execFileAsync = promisify(execFile);
const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

let scratch: string;
let kubo: KuboNode;
let daemon: DaemonProc;
let ctd: Containerd;
let env: NodeJS.ProcessEnv;
let cid: string;

const PRUNE = `\\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /stargz.index.json -o -path /.no.prefetch.landmark \\) -prune`;
const SCRIPT = [
  'set -e',
  'echo "doc: $(ls /usr/share/doc 2>&1 | head -1)"',
  'echo "apt: $(ls -A /etc/apt) $(cat /etc/apt/only.conf)"',
  "stat -c '%a %h %s %N' /opt/t/a /opt/t/b /opt/t/suid /opt/t/link",
  '[ "$(stat -c %i /opt/t/a)" = "$(stat -c %i /opt/t/b)" ] && echo "hardlinks share an inode"',
  'echo "packages: $(dpkg -l | grep -c ^ii)"',
  `find / -xdev ${PRUNE} -o -type d -printf 'd %p %m %U %G %n\\n' -o -printf '%y %p %m %U %G %n %s %l\\n' | sort`,
  `find / -xdev ${PRUNE} -o -type f -print0 | sort -z | xargs -0 sha256sum`,
].join('\n');

before(async () => {
  reapStale();
  scratch = makeScratch();
  const rootfs = join(scratch, 'rootfs');
  await execFileAsync('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { timeout: 600_000, maxBuffer: 64 << 20 });
  const top = join(scratch, 'top');
  mkdirSync(join(top, 'usr/share'), { recursive: true });
  writeFileSync(join(top, 'usr/share/.wh.doc'), '');
  mkdirSync(join(top, 'etc/apt'), { recursive: true });
  writeFileSync(join(top, 'etc/apt/.wh..wh..opq'), '');
  writeFileSync(join(top, 'etc/apt/only.conf'), 'opaque\n');
  mkdirSync(join(top, 'opt/t'), { recursive: true });
  writeFileSync(join(top, 'opt/t/a'), 'linked\n');
  linkSync(join(top, 'opt/t/a'), join(top, 'opt/t/b'));
  writeFileSync(join(top, 'opt/t/suid'), '#!/bin/sh\n');
  chmodSync(join(top, 'opt/t/suid'), 0o4755);
  symlinkSync('../t/a', join(top, 'opt/t/link'));

  const oci = join(scratch, 'oci');
  const blobs = join(oci, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const digest = sha(b);
    writeFileSync(join(blobs, digest.slice(7)), b);
    return { digest, size: b.length };
  };
  const layers: { digest: string; size: number; diffID: string }[] = [];
  for (const dir of [rootfs, top]) {
    const { stdout: tar } = await execFileAsync('tar', ['--numeric-owner', '-C', dir, '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 1 << 30 });
    const gz = await gzip(tar);
    layers.push({ ...put(gz), diffID: sha(tar) });
  }
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/bash'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) } })));
  const layerType = 'application/vnd.oci.image.layer.v1.tar+gzip';
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: layerType, digest: l.digest, size: l.size })),
      }),
    ),
  );
  const name = 'example.com/sgt/debian:12';
  writeFileSync(join(oci, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(oci, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': name } }] }));
  const image = join(scratch, 'image.tar');
  await execFileAsync('tar', ['-C', oci, '-cf', image, '.']);

  kubo = await startKubo(scratch);
  env = { IPFS_PATH: kubo.ipfsPath };
  daemon = await startDaemon(scratch, { config: daemonConfig(''), env });
  ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
  await ctd.ctr(['images', 'import', image]);
  const where = ['--address', ctd.address, '--namespace', ctd.namespace];
  const pushed = await runCli(['image', 'ipfs-push', '--quiet', ...where, name], env);
  assert.equal(pushed.code, 0, pushed.stderr);
  cid = cidOf(pushed);
  for (const n of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', n]);
});

after(async () => {
  await ctd?.stop();
  await daemon?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
});

async function gzip(input: Buffer): Promise<Buffer> {
  const { gzip: z } = await import('node:zlib');
  return promisify(z)(input, { level: 6 });
}

async function runFromCid(snapshotter: 'stargz' | 'overlayfs'): Promise<string> {
  const where = ['--address', ctd.address, '--namespace', ctd.namespace];
  const r = await runCli(['image', 'rpull', '--ipfs', ...where, ...(snapshotter === 'overlayfs' ? ['--snapshotter', 'overlayfs'] : []), cid], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, snapshotter === 'stargz' ? /2 lazy, 0 pulled/ : /0 lazy, 2 pulled/);
  const out = await ctd.ctr(['run', '--rm', '--snapshotter', snapshotter, cid, `sgt-distro-${snapshotter}`, '/bin/bash', '-c', SCRIPT], { timeoutMs: 300_000 });
  await ctd.ctr(['images', 'rm', '--sync', cid]);
  return out;
}

test('a Debian 12 image runs lazily from its CID and every file, mode, owner and link equals the full pull', async () => {
  const lazy = await runFromCid('stargz');
  const full = await runFromCid('overlayfs');
  const head = lazy.split('\n').slice(0, 9);
  assert.match(head[0]!, /^doc: ls: cannot access '\/usr\/share\/doc': No such file or directory$/, 'the whiteout hides the lower dir');
  assert.equal(head[1], 'apt: only.conf opaque', 'the opaque dir hides the lower entries');
  assert.match(head[2]!, /^644 2 7 '\/opt\/t\/a'$/);
  assert.match(head[3]!, /^644 2 7 '\/opt\/t\/b'$/);
  assert.match(head[4]!, /^4755 1 10 '\/opt\/t\/suid'$/);
  assert.match(head[5]!, /^777 1 6 '\/opt\/t\/link' -> '..\/t\/a'$/);
  assert.equal(head[6], 'hardlinks share an inode');
  assert.ok(Number(/^packages: (\d+)$/.exec(head[7]!)?.[1]) > 50, head[7]);
  const files = lazy.split('\n').filter((l) => /^[0-9a-f]{64} {2}\//.test(l));
  assert.ok(files.length > 3000, `${files.length} files hashed`);
  if (lazy !== full) {
    const a = lazy.split('\n');
    const b = full.split('\n');
    const i = a.findIndex((l, k) => l !== b[k]);
    assert.fail(`lazy and full runs differ first at line ${i}: lazy ${JSON.stringify(a[i])}, full ${JSON.stringify(b[i])}`);
  }
});
