/**
 * `stargz-ipfs image ipfs-push` end to end: Debian's containerd 1.6 holds images imported
 * with ctr, a real Kubo node receives the blobs, and the CLI runs as a child process. The
 * printed CID is resolved back through our OCI-over-IPFS resolver and every blob is checked:
 * digest and size, `ipfs://` URL, eStargz layers (our reader and the reference reader),
 * annotations, diff_ids. The converted image also runs with plain overlayfs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { refList } from './helpers/estargz-ref.js';
import { buildImage, type Built, type FileSpec } from './harness/push-fixtures.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { resolveImage, type ResolvedImage } from '../src/ipfs/oci-resolver.js';
import { isCidV1Base32 } from '../src/ipfs/cid.js';
import { parseIndex, type Descriptor } from '../src/ipfs/oci.js';
import { parsePlatform } from '../src/ipfs/platform.js';
import { IpfsBlobSource } from '../src/source/ipfs-source.js';
import { openEstargz } from '../src/estargz/index.js';

const execFileAsync = promisify(execFile);
const mainJs = new URL('../src/cli/main.js', import.meta.url).pathname;
const MiB = 1024 * 1024;
const TOC = 'containerd.io/snapshot/stargz/toc.digest';
const USIZE = 'io.containers.estargz.uncompressed-size';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let scratch: string;
let kubo: KuboNode;
let ctd: Containerd;
let ipfs: IpfsClient;
let config: string;
let oci: Built;
let docker: Built;
let multi: Built;

const LAYERS: Readonly<Record<string, FileSpec>>[] = [
  { 'data/hello.txt': 'hello from layer 1\n', 'data/big.bin': { size: 9 * MiB + 17, seed: 1 }, 'etc/motd': 'welcome\n' },
  { 'data/second.txt': 'second layer\n', 'opt/app/run.sh': '#!/bin/sh\necho app\n' },
];

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  ctd = await startContainerd(scratch);
  ipfs = new IpfsClient({ endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }) });
  config = join(scratch, 'config.toml');
  writeFileSync(config, '');
  const dir = (name: string) => {
    mkdirSync(join(scratch, name));
    return join(scratch, name);
  };
  oci = await buildImage(dir('oci'), { name: 'example.com/sgt/push:1', layers: LAYERS });
  docker = await buildImage(dir('docker'), { name: 'example.com/sgt/docker:1', layers: LAYERS.slice(1), docker: true });
  multi = await buildImage(dir('multi'), { name: 'example.com/sgt/multi:1', layers: LAYERS.slice(1), platforms: ['linux/amd64', 'linux/arm64'] });
  for (const img of [oci, docker, multi]) await ctd.ctr(['images', 'import', '--all-platforms', img.tarPath]);
});

after(async () => {
  ipfs?.close();
  await ctd?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function push(args: string[], configPath = config): Promise<Run> {
  const argv = [mainJs, 'image', 'ipfs-push', '--address', ctd.address, '--namespace', ctd.namespace, '--config', configPath, ...args];
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, argv, { env: { ...process.env, IPFS_PATH: kubo.ipfsPath }, maxBuffer: 16 << 20, timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function pushOk(args: string[]): Promise<{ cid: string; stderr: string }> {
  const r = await push(args);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const cid = lines[lines.length - 1]!;
  assert.ok(isCidV1Base32(cid), r.stdout);
  return { cid, stderr: r.stderr };
}

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function cat(cid: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of ipfs.catStream(cid)) parts.push(c);
  return Buffer.concat(parts);
}

/** The root descriptor JSON behind `cid`, as pushed. */
async function rootOf(cid: string): Promise<Record<string, unknown>> {
  return JSON.parse((await cat(cid)).toString()) as Record<string, unknown>;
}

const onlyUrl = (d: Descriptor & { cid: string }) => assert.deepEqual(d.urls, [`ipfs://${d.cid}`], d.digest);

/** Every descriptor has exactly its ipfs:// URL; every layer's bytes match its descriptor. */
const pinnedCids = (): Set<string> => new Set(kubo.cli(['pin', 'ls', '--type=recursive', '--quiet']).toString().split('\n').filter(Boolean));

async function checkComplete(r: ResolvedImage): Promise<Buffer[]> {
  const pinned = pinnedCids();
  for (const d of [r.rootDescriptor, r.manifestDescriptor, r.configDescriptor, ...r.layers]) {
    onlyUrl(d);
    assert.ok(pinned.has(d.cid), `${d.digest} (${d.cid}) is pinned`);
  }
  const layers: Buffer[] = [];
  for (const l of r.layers) {
    const bytes = await cat(l.cid);
    assert.equal(bytes.length, l.size);
    assert.equal(sha256(bytes), l.digest);
    layers.push(bytes);
  }
  return layers;
}

let firstCid: string;

test('push converts every layer to eStargz and publishes a complete image', async () => {
  const { cid, stderr } = await pushOk([oci.name]);
  firstCid = cid;
  assert.match(stderr, /layer 1\/3 .*converting to eStargz/);
  assert.match(stderr, /layer 3\/3 done/);
  assert.match(stderr, /added \d+\.\d MiB \/ \d+\.\d MiB/);
  assert.match(stderr, new RegExp(`stored image ${oci.name}-esgz`));

  const root = await rootOf(cid);
  assert.deepEqual(Object.keys(root), ['mediaType', 'digest', 'size', 'urls']);
  const r = await resolveImage(ipfs, cid, { platform: parsePlatform('linux/amd64')! });
  assert.equal(r.rootDescriptor.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const layers = await checkComplete(r);
  assert.equal(r.layers.length, 3);
  assert.ok(pinnedCids().has(cid), 'the root descriptor is pinned');

  const diffIDs: string[] = [];
  for (const [i, l] of r.layers.entries()) {
    assert.equal(l.mediaType, OCI_LAYER);
    assert.notEqual(l.digest, oci.layerDigests[i], 'layer was converted');
    const tar = gunzipSync(layers[i]!);
    diffIDs.push(sha256(tar));
    assert.equal(l.annotations?.[USIZE], String(tar.length));
    const esgz = await openEstargz(new IpfsBlobSource(l.cid, ipfs), { tocDigest: l.annotations?.[TOC] });
    assert.ok((await esgz.readToc()).entries.some((e) => e.name === '.no.prefetch.landmark'));
    const file = join(scratch, `layer-${i}.blob`);
    writeFileSync(file, layers[i]!);
    const ref = await refList(file, l.annotations?.[TOC]);
    assert.equal(ref.code, 0, JSON.stringify(ref.lines.at(-1)));
  }
  assert.deepEqual(r.config.rootfs?.diff_ids, diffIDs);
  const big = await openEstargz(new IpfsBlobSource(r.layers[1]!.cid, ipfs));
  assert.equal((await big.readToc()).entries.find((e) => e.name === 'data/big.bin')?.numChunks, 3, '4 MiB chunks');
});

test('the converted image is <ref>-esgz in containerd, survives GC, and runs with overlayfs', async () => {
  assert.ok((await ctd.ctr(['images', 'ls', '-q'])).split('\n').includes(`${oci.name}-esgz`));
  // Deleting an image with --sync runs the garbage collector: the push's lease is gone, so
  // only the GC labels of the new manifest keep its config and layers.
  await ctd.ctr(['images', 'tag', oci.name, 'example.com/sgt/throwaway:1']);
  await ctd.ctr(['images', 'rm', '--sync', 'example.com/sgt/throwaway:1']);
  const out = await ctd.ctr(['run', '--rm', '--snapshotter', 'overlayfs', `${oci.name}-esgz`, `sgt-run-${process.pid}`, '/bin/sh', '-c', 'echo hello && cat /data/hello.txt /data/second.txt']);
  assert.equal(out, 'hello\nhello from layer 1\nsecond layer\n');
});

test('the same image pushed again gives the same CID; --quiet prints only the CID', async () => {
  const r = await push(['--quiet', oci.name]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, `${firstCid}\n`);
});

test('layers that already are eStargz are not converted again', async () => {
  const { cid, stderr } = await pushOk([`${oci.name}-esgz`]);
  assert.doesNotMatch(stderr, /converting/);
  assert.match(stderr, /layer 3\/3 .*publishing as it is/);
  // Same layers, same annotations, same urls: the very same image.
  assert.equal(cid, firstCid);
});

test('--estargz=false publishes the layers unchanged, still with ipfs:// URLs', async () => {
  const { cid, stderr } = await pushOk(['--estargz=false', oci.name]);
  assert.doesNotMatch(stderr, /converting/);
  const r = await resolveImage(ipfs, cid, { platform: parsePlatform('linux/amd64')! });
  await checkComplete(r);
  assert.deepEqual(r.layers.map((l) => l.digest), oci.layerDigests);
  assert.ok(r.layers.every((l) => l.annotations?.[TOC] === undefined));
});

test('a Docker media type image comes out OCI', async () => {
  assert.match(await ctd.ctr(['images', 'ls']), /example\.com\/sgt\/docker:1\s+application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
  const { cid } = await pushOk([docker.name]);
  const r = await resolveImage(ipfs, cid, { platform: parsePlatform('linux/amd64')! });
  await checkComplete(r);
  assert.equal(r.rootDescriptor.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(r.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(r.configDescriptor.mediaType, 'application/vnd.oci.image.config.v1+json');
  assert.ok(r.layers.every((l) => l.mediaType === OCI_LAYER));
  const pushedDocs = [...r.blobs.values()].map((b) => b.toString());
  assert.ok(pushedDocs.every((d) => !d.includes('vnd.docker')), 'no Docker media type left');
});

test('an index keeps the host platform by default, one with --platform, all with --all-platforms', async () => {
  const platformsOf = async (cid: string) => {
    const root = (await rootOf(cid)) as unknown as Descriptor;
    assert.equal(root.mediaType, 'application/vnd.oci.image.index.v1+json');
    const index = parseIndex(await cat(root.urls![0]!.slice('ipfs://'.length)), 'index');
    return index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`);
  };
  const host = await pushOk([multi.name]);
  assert.deepEqual(await platformsOf(host.cid), ['linux/amd64']);
  const arm = await pushOk(['--platform', 'linux/arm64', multi.name]);
  assert.deepEqual(await platformsOf(arm.cid), ['linux/arm64']);
  const all = await pushOk(['--all-platforms', multi.name]);
  assert.deepEqual(await platformsOf(all.cid), ['linux/amd64', 'linux/arm64']);
  // Shared layers were converted once: two layers, not four.
  assert.match(all.stderr, /2 layer\(s\), all platforms/);
  for (const p of ['linux/amd64', 'linux/arm64']) {
    const r = await resolveImage(ipfs, all.cid, { platform: parsePlatform(p)! });
    await checkComplete(r);
    assert.equal(r.config.architecture, p.split('/')[1]);
  }
  const none = await push(['--platform', 'linux/s390x', multi.name]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no manifest in the image matches linux\/s390x/);
});

test('prioritized files go first, followed by .prefetch.landmark', async () => {
  const list = join(scratch, 'prioritized.txt');
  writeFileSync(list, 'data/hello.txt\n\nopt/app/run.sh\nnot/anywhere\n');
  const { cid, stderr } = await pushOk(['--prioritized-files', list, oci.name]);
  assert.match(stderr, /prioritized files in no layer: not\/anywhere/);
  const r = await resolveImage(ipfs, cid, { platform: parsePlatform('linux/amd64')! });
  const names = async (i: number) => (await (await openEstargz(new IpfsBlobSource(r.layers[i]!.cid, ipfs))).readToc()).entries.map((e) => e.name);
  const first = await names(1);
  assert.ok(first.indexOf('data/hello.txt') < first.indexOf('.prefetch.landmark'));
  assert.ok(first.indexOf('.prefetch.landmark') < first.indexOf('data/big.bin'));
  const second = await names(2);
  assert.ok(second.indexOf('opt/app/run.sh') < second.indexOf('.prefetch.landmark'));
  assert.ok(!second.includes('.no.prefetch.landmark'));
});

test('failures are one clear line, a non-zero exit, and no CID', async () => {
  const unknown = await push(['example.com/sgt/none:1']);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /image example\.com\/sgt\/none:1 is not in containerd.*pull or import it first/);
  assert.equal(unknown.stderr.trim().split('\n').length, 1);

  const deadConfig = join(scratch, 'dead.toml');
  writeFileSync(deadConfig, '[ipfs]\napi_address = "http://127.0.0.1:1"\nrequest_timeout_sec = 2\n');
  const dead = await push([oci.name], deadConfig);
  assert.equal(dead.code, 1);
  assert.equal(dead.stdout, '');
  assert.match(dead.stderr, /IPFS node is not reachable/);
  assert.equal(dead.stderr.trim().split('\n').length, 1);

  const usage = await push(['--estargz=maybe', oci.name]);
  assert.equal(usage.code, 2);

  // A blob deleted from the content store: the push names it and says to pull first.
  const victim = oci.layerDigests[2]!;
  await ctd.ctr(['content', 'rm', victim]);
  const missing = await push([oci.name]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, new RegExp(`blob ${victim} \\(layer of manifest sha256:[0-9a-f]{64}\\) is not in containerd's content store: pull the image`));
  assert.equal(missing.stderr.trim().split('\n').length, 1);
});

test('no lease is left behind', async () => {
  const leases = await ctd.ctr(['leases', 'ls', '-q']);
  assert.doesNotMatch(leases, /stargz-ipfs-push/);
});
