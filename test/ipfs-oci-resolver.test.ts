/**
 * OCI-over-IPFS resolution against a real Kubo node, with image JSON written by hand:
 * every blob `add`ed, every descriptor given `urls: ["ipfs://<CID>"]`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { resolveImage } from '../src/ipfs/oci-resolver.js';
import { MEDIA_TYPES, type Descriptor, type Platform } from '../src/ipfs/oci.js';
import { hostPlatform, parsePlatform, selectManifest } from '../src/ipfs/platform.js';
import { isCidV1Base32, parseIpfsRef } from '../src/ipfs/cid.js';
import { isSgError, type ErrorCode } from '../src/errors.js';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.oci.image.config.v1+json';

let scratch: string;
let kubo: KuboNode;
let client: IpfsClient;

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  client = new IpfsClient({ endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }), requestTimeoutMs: 5000 });
});
after(async () => {
  client?.close();
  await kubo?.stop();
  destroyScratch(scratch);
});

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Adds a blob and returns its descriptor with the ipfs:// URL. */
function put(content: Uint8Array | object, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor & { urls: readonly string[] } {
  const bytes = content instanceof Uint8Array ? content : Buffer.from(JSON.stringify(content));
  return { mediaType, digest: sha256(bytes), size: bytes.length, urls: [`ipfs://${kubo.add(bytes)}`], ...extra };
}

function image(platform: Platform, manifestType: string = MEDIA_TYPES.ociManifest, layerCount = 2) {
  const layers = Array.from({ length: layerCount }, () => put(randomBytes(1000 + Math.floor(Math.random() * 5000)), LAYER));
  const config = put({ architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }, CONFIG);
  const manifest = { schemaVersion: 2, mediaType: manifestType, config, layers };
  return { layers, config, manifest, descriptor: put(manifest, manifestType, { platform }) };
}

function root(target: Descriptor): string {
  return kubo.add(Buffer.from(JSON.stringify(target)));
}

const hasCode = (code: ErrorCode, re?: RegExp) => (e: unknown) => isSgError(e, code) && (!re || re.test(e.message));

test('CID syntax: base32 CIDv1 only; references as CID, ipfs://CID or /ipfs/CID', () => {
  const cid = kubo.add(Buffer.from('x'));
  assert.ok(isCidV1Base32(cid));
  assert.ok(isCidV1Base32('bafybeibfwqrpwk42qdnnjt5y56f43ex7qzxyaffms7k3vt3uos5f2xtrzy'));
  for (const bad of ['QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG', cid.toUpperCase(), cid.slice(0, -1), `${cid}a`, 'b', 'bafy!', '']) {
    assert.equal(isCidV1Base32(bad), false, bad);
  }
  assert.equal(parseIpfsRef(`ipfs://${cid}`), cid);
  assert.equal(parseIpfsRef(`/ipfs/${cid}`), cid);
  assert.equal(parseIpfsRef(` ${cid}\n`), cid);
  assert.throws(() => parseIpfsRef('docker.io/library/busybox'), hasCode('INVALID_ARGUMENT'));
});

test('platform selection: exact match first, older variants run on newer hosts, none otherwise', () => {
  const d = (p: string): Descriptor => ({ mediaType: MEDIA_TYPES.ociManifest, digest: `sha256:${'0'.repeat(64)}`, size: 1, platform: parsePlatform(p)! });
  const list = [d('linux/amd64'), d('linux/arm/v6'), d('linux/arm/v7'), d('linux/arm64/v8'), d('windows/amd64')];
  assert.equal(selectManifest(list, parsePlatform('linux/amd64')!), list[0]);
  assert.equal(selectManifest(list, parsePlatform('linux/arm64')!), list[3]);
  assert.equal(selectManifest(list, parsePlatform('linux/arm/v7')!), list[2]);
  assert.equal(selectManifest([list[1]!], parsePlatform('linux/arm/v7')!), list[1]);
  assert.equal(selectManifest([list[2]!], parsePlatform('linux/arm/v6')!), undefined);
  assert.equal(selectManifest(list, parsePlatform('linux/s390x')!), undefined);
  assert.equal(selectManifest([{ ...list[0]!, platform: { os: 'linux', architecture: 'x86_64' } }], parsePlatform('linux/amd64')!)?.digest, list[0]!.digest);
  assert.equal(parsePlatform('linux'), undefined);
});

test('OCI index → manifest for the host platform → config and layers, each blob verified', async () => {
  const host = hostPlatform();
  const mine = image(host);
  const other = image({ os: 'linux', architecture: host.architecture === 's390x' ? 'ppc64le' : 's390x' });
  const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [other.descriptor, mine.descriptor] };
  const indexDesc = put(index, MEDIA_TYPES.ociIndex);
  const rootCid = root(indexDesc);
  for (const ref of [rootCid, `ipfs://${rootCid}`, `/ipfs/${rootCid}`]) {
    const img = await resolveImage(client, ref);
    assert.equal(img.rootCid, rootCid);
    assert.equal(img.rootDescriptor.digest, indexDesc.digest);
    assert.equal(img.index?.manifests.length, 2);
    assert.equal(img.manifestDescriptor.digest, mine.descriptor.digest);
    assert.equal(img.manifestDescriptor.cid, mine.descriptor.urls[0]!.slice(7));
    assert.equal(img.config.architecture, host.architecture);
    assert.equal(img.configDescriptor.digest, mine.config.digest);
    assert.deepEqual(
      img.layers.map((l) => [l.digest, l.cid, l.size]),
      mine.layers.map((l) => [l.digest, l.urls[0]!.slice(7), l.size]),
    );
    assert.deepEqual([...img.blobs.keys()].sort(), [indexDesc.digest, mine.descriptor.digest, mine.config.digest].sort());
    for (const [digest, bytes] of img.blobs) assert.equal(sha256(bytes), digest);
  }
  const picked = await resolveImage(client, rootCid, { platform: other.descriptor.platform! });
  assert.equal(picked.manifestDescriptor.digest, other.descriptor.digest);
});

test('Docker manifest list and schema 2 manifest; a root naming a manifest directly', async () => {
  const mine = image(hostPlatform(), MEDIA_TYPES.dockerManifest, 1);
  const list = put({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList, manifests: [mine.descriptor] }, MEDIA_TYPES.dockerManifestList);
  const viaList = await resolveImage(client, root(list));
  assert.equal(viaList.manifest.mediaType, MEDIA_TYPES.dockerManifest);
  assert.equal(viaList.layers.length, 1);
  const direct = await resolveImage(client, root(mine.descriptor));
  assert.equal(direct.index, undefined);
  assert.equal(direct.manifestDescriptor.digest, mine.descriptor.digest);
});

test('no manifest for the platform: NOT_FOUND listing what is available', async () => {
  const a = image({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  const b = image({ os: 'linux', architecture: 's390x' });
  const index = put({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [a.descriptor, b.descriptor] }, MEDIA_TYPES.ociIndex);
  await assert.rejects(
    resolveImage(client, root(index), { platform: { os: 'linux', architecture: 'amd64' } }),
    (e: unknown) => isSgError(e, 'NOT_FOUND') && e.context.available === 'linux/arm64/v8, linux/s390x' && /linux\/amd64/.test(e.message),
  );
});

test('descriptors without an ipfs:// CIDv1 URL are rejected, wherever they are', async () => {
  const mine = image(hostPlatform());
  const noUrlLayer = { ...mine.manifest, layers: [mine.layers[0], { ...mine.layers[1], urls: ['https://example.org/blob'] }] };
  await assert.rejects(resolveImage(client, root(put(noUrlLayer, MEDIA_TYPES.ociManifest))), hasCode('INVALID_ARGUMENT', /layer 1 descriptor has no ipfs:\/\/ URL/));
  const { urls: _dropped, ...bare } = mine.descriptor;
  const index = put({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [bare] }, MEDIA_TYPES.ociIndex);
  await assert.rejects(resolveImage(client, root(index)), hasCode('INVALID_ARGUMENT', /manifest descriptor has no ipfs/));
  const v0 = { ...mine.manifest, config: { ...mine.config, urls: ['ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'] } };
  await assert.rejects(resolveImage(client, root(put(v0, MEDIA_TYPES.ociManifest))), hasCode('INVALID_ARGUMENT', /not a base32 CIDv1/));
  await assert.rejects(resolveImage(client, kubo.add(Buffer.from('{"mediaType": 3}'))), hasCode('INVALID_ARGUMENT', /root descriptor/));
});

test('a blob that does not match its descriptor (digest or size) is CORRUPT', async () => {
  const mine = image(hostPlatform());
  const wrongDigest = { ...mine.descriptor, digest: `sha256:${'ab'.repeat(32)}` };
  await assert.rejects(resolveImage(client, root(wrongDigest)), (e: unknown) => isSgError(e, 'CORRUPT') && /digest/.test(e.message) && e.context.digest === wrongDigest.digest);
  const wrongSize = { ...mine.manifest, config: { ...mine.config, size: mine.config.size + 1 } };
  await assert.rejects(resolveImage(client, root(put(wrongSize, MEDIA_TYPES.ociManifest))), hasCode('CORRUPT', /size/));
  // Right size, right CID, but the CID names other bytes than the digest: the swap is caught.
  const otherConfig = put({ architecture: 'amd64', os: 'linux', padding: 'x'.repeat(Math.max(0, mine.config.size - 42)) }, CONFIG);
  const swapped = { ...mine.manifest, config: { ...mine.config, urls: otherConfig.urls } };
  await assert.rejects(resolveImage(client, root(put(swapped, MEDIA_TYPES.ociManifest))), hasCode('CORRUPT'));
});
