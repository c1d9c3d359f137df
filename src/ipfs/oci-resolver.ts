/**
 * Root CID → root descriptor → index → manifest for the platform → config and layers
 * (spec §1.4, §1.7). Every descriptor must carry `ipfs://<CIDv1>`; every blob read whole
 * is checked against its descriptor's size and digest. Layers are not read, only named.
 * The CLI's pull and the daemon share this resolver.
 */
import { SgError, isSgError } from '../errors.js';
import { parseIpfsRef } from './cid.js';
import {
  ipfsDescriptor,
  isIndexType,
  isManifestType,
  parseConfig,
  parseDescriptor,
  parseIndex,
  parseJson,
  parseManifest,
  verifyBlob,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type IpfsDescriptor,
  type Platform,
} from './oci.js';
import { formatPlatform, hostPlatform, platformMatches, selectManifest } from './platform.js';
import type { IpfsClient } from './rpc-client.js';

export interface ResolveOptions {
  /** Defaults to this host (linux/amd64 on x86-64). */
  readonly platform?: Platform;
  readonly signal?: AbortSignal;
  /** Largest JSON document read whole (containerd's manifest limit is 4 MiB). */
  readonly maxDocumentBytes?: number;
}

export interface ResolvedImage {
  readonly rootCid: string;
  readonly rootDescriptor: IpfsDescriptor;
  /** The index the manifest was chosen from; absent when the root names a manifest. */
  readonly index?: ImageIndex;
  readonly manifestDescriptor: IpfsDescriptor;
  readonly manifest: ImageManifest;
  readonly configDescriptor: IpfsDescriptor;
  readonly config: ImageConfig;
  readonly layers: readonly IpfsDescriptor[];
  /** Every blob read whole (indexes, manifest, config), by digest, byte for byte. */
  readonly blobs: ReadonlyMap<string, Uint8Array>;
}

const MAX_ROOT_BYTES = 64 * 1024;
/** An index may point at another index; stop a hostile loop early. */
const MAX_INDEX_DEPTH = 4;

export async function resolveImage(client: IpfsClient, ref: string, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const rootCid = parseIpfsRef(ref);
  const want = opts.platform ?? hostPlatform();
  const maxBytes = opts.maxDocumentBytes ?? 4 * 1024 * 1024;
  const { signal } = opts;
  const blobs = new Map<string, Uint8Array>();

  // One `cat` of the size the descriptor names, no `stat` first: a blob that is shorter is
  // refused by the node (the range passes its end), one that is longer fails the digest.
  const readDocument = async (d: IpfsDescriptor, where: string): Promise<Uint8Array> => {
    if (d.size > maxBytes) throw new SgError('TOO_LARGE', `${where} is larger than allowed`, { where, cid: d.cid, size: d.size, limit: maxBytes });
    const bytes = await client.cat(d.cid, 0, d.size, signal).catch((err: unknown) => {
      if (isSgError(err, 'INVALID_ARGUMENT') && err.context.available !== undefined) {
        throw new SgError('CORRUPT', `${where} size differs from its descriptor`, { where, cid: d.cid, digest: d.digest, size: d.size, actual: err.context.available });
      }
      throw err;
    });
    verifyBlob(bytes, d, where);
    blobs.set(d.digest, bytes);
    return bytes;
  };

  const rootSize = (await client.stat(rootCid, signal)).size;
  if (rootSize > MAX_ROOT_BYTES) throw new SgError('TOO_LARGE', 'root descriptor is larger than allowed', { cid: rootCid, size: rootSize, limit: MAX_ROOT_BYTES });
  const rootJson = parseJson(await client.cat(rootCid, 0, rootSize, signal), 'root descriptor');
  const rootDescriptor = ipfsDescriptor(parseDescriptor(rootJson, 'root descriptor'), 'root descriptor');

  let target = rootDescriptor;
  let index: ImageIndex | undefined;
  for (let depth = 0; isIndexType(target.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new SgError('INVALID_ARGUMENT', 'image indexes nested too deep', { cid: rootCid, depth });
    index = parseIndex(await readDocument(target, 'image index'), 'image index');
    const chosen = selectManifest(index.manifests, want);
    if (!chosen) {
      const available = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ') || 'none';
      throw noManifestFor(want, available, target);
    }
    target = ipfsDescriptor(chosen, 'manifest descriptor');
  }
  if (!isManifestType(target.mediaType)) {
    throw new SgError('INVALID_ARGUMENT', 'descriptor is neither an image index nor a manifest', { cid: target.cid, digest: target.digest, mediaType: target.mediaType });
  }

  const manifestDescriptor = target;
  const manifest = parseManifest(await readDocument(manifestDescriptor, 'image manifest'), 'image manifest');
  const configDescriptor = ipfsDescriptor(manifest.config, 'config descriptor');
  const config = parseConfig(await readDocument(configDescriptor, 'image config'), 'image config');
  // A manifest named directly (no index) is checked against the platform through its
  // config, as containerd's pull does: an image for another platform is not unpacked.
  if (!index && config.os && config.architecture) {
    const own = { os: config.os, architecture: config.architecture, ...(config.variant && { variant: config.variant }) };
    if (!platformMatches(own, want)) throw noManifestFor(want, formatPlatform(own), manifestDescriptor);
  }
  const layers = manifest.layers.map((l, i) => ipfsDescriptor(l, `layer ${i} descriptor`));
  return { rootCid, rootDescriptor, ...(index && { index }), manifestDescriptor, manifest, configDescriptor, config, layers, blobs };
}

function noManifestFor(want: Platform, available: string, d: IpfsDescriptor): SgError {
  return new SgError('NOT_FOUND', `no manifest for platform ${formatPlatform(want)}; available: ${available}`, {
    cid: d.cid,
    digest: d.digest,
    platform: formatPlatform(want),
    available,
  });
}
