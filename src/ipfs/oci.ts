/**
 * The OCI (and Docker schema 2) documents an IPFS image is made of, parsed from untrusted
 * JSON into typed values, and the checks every blob read whole must pass (spec §1.4).
 */
import { createHash } from 'node:crypto';
import { SgError } from '../errors.js';
import { cidFromUrls, isCidV1Base32 } from './cid.js';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

export const isIndexType = (mediaType: string): boolean =>
  mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
export const isManifestType = (mediaType: string): boolean =>
  mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest;

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Platform;
}

/** A descriptor whose blob lives in IPFS under `cid`. */
export interface IpfsDescriptor extends Descriptor {
  readonly cid: string;
}

export interface ImageIndex {
  readonly schemaVersion: number;
  readonly mediaType?: string;
  readonly manifests: readonly Descriptor[];
}

export interface ImageManifest {
  readonly schemaVersion: number;
  readonly mediaType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The fields the snapshotter reads; the rest of the config is kept as is. */
export interface ImageConfig {
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
  readonly rootfs?: { readonly type: string; readonly diff_ids: readonly string[] };
  readonly [key: string]: unknown;
}

const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

const invalid = (what: string, where: string, extra: Record<string, string | number> = {}): SgError =>
  new SgError('INVALID_ARGUMENT', `invalid ${where}: ${what}`, { where, ...extra });

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function parseJson(bytes: Uint8Array, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalid('not JSON', where);
  }
  if (!isObject(v)) throw invalid('not a JSON object', where);
  return v;
}

export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid('descriptor is not an object', where);
  const { mediaType, digest, size, urls, annotations, platform } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid('descriptor has no mediaType', where);
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw invalid('descriptor digest is not sha256:<hex> or sha512:<hex>', where);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid('descriptor size is not a non-negative integer', where, { digest });
  if (urls !== undefined && !(Array.isArray(urls) && urls.every((u) => typeof u === 'string'))) throw invalid('descriptor urls is not a list of strings', where, { digest });
  if (annotations !== undefined && !(isObject(annotations) && Object.values(annotations).every((a) => typeof a === 'string'))) {
    throw invalid('descriptor annotations are not string pairs', where, { digest });
  }
  return {
    mediaType,
    digest,
    size,
    ...(urls !== undefined && { urls: urls as string[] }),
    ...(annotations !== undefined && { annotations: annotations as Record<string, string> }),
    ...(platform !== undefined && { platform: parsePlatformField(platform, where, digest) }),
  };
}

/** Requires an `ipfs://<CIDv1 base32>` URL on the descriptor. */
export function ipfsDescriptor(d: Descriptor, where: string): IpfsDescriptor {
  const cid = cidFromUrls(d.urls);
  if (cid === undefined) throw new SgError('INVALID_ARGUMENT', `${where} has no ipfs:// URL`, { where, digest: d.digest });
  if (!isCidV1Base32(cid)) throw new SgError('INVALID_ARGUMENT', `${where} has an ipfs:// URL that is not a base32 CIDv1`, { where, digest: d.digest, cid });
  return { ...d, cid };
}

export function parseIndex(bytes: Uint8Array, where: string): ImageIndex {
  const v = parseJson(bytes, where);
  if (v.schemaVersion !== 2) throw invalid('schemaVersion is not 2', where);
  if (!Array.isArray(v.manifests)) throw invalid('no manifests list', where);
  const manifests = v.manifests.map((m, i) => parseDescriptor(m, `${where} manifests[${i}]`));
  return { schemaVersion: 2, ...(typeof v.mediaType === 'string' && { mediaType: v.mediaType }), manifests };
}

export function parseManifest(bytes: Uint8Array, where: string): ImageManifest {
  const v = parseJson(bytes, where);
  if (v.schemaVersion !== 2) throw invalid('schemaVersion is not 2', where);
  if (!Array.isArray(v.layers)) throw invalid('no layers list', where);
  return {
    schemaVersion: 2,
    ...(typeof v.mediaType === 'string' && { mediaType: v.mediaType }),
    config: parseDescriptor(v.config, `${where} config`),
    layers: v.layers.map((l, i) => parseDescriptor(l, `${where} layers[${i}]`)),
    ...(isObject(v.annotations) && { annotations: v.annotations as Record<string, string> }),
  };
}

export function parseConfig(bytes: Uint8Array, where: string): ImageConfig {
  const v = parseJson(bytes, where);
  const rootfs = v.rootfs;
  if (rootfs !== undefined && !(isObject(rootfs) && Array.isArray(rootfs.diff_ids) && rootfs.diff_ids.every((d) => typeof d === 'string' && DIGEST.test(d)))) {
    throw invalid('rootfs.diff_ids is not a list of digests', where);
  }
  return v as ImageConfig;
}

/** Size, then digest: a blob read whole must be exactly what its descriptor names. */
export function verifyBlob(bytes: Uint8Array, d: IpfsDescriptor, where: string): void {
  if (bytes.length !== d.size) {
    throw new SgError('CORRUPT', `${where} size differs from its descriptor`, { where, cid: d.cid, digest: d.digest, size: d.size, actual: bytes.length });
  }
  const [algorithm, expected] = d.digest.split(':') as [string, string];
  const actual = createHash(algorithm).update(bytes).digest('hex');
  if (actual !== expected) {
    throw new SgError('CORRUPT', `${where} digest differs from its descriptor`, { where, cid: d.cid, digest: d.digest, actual: `${algorithm}:${actual}` });
  }
}

function parsePlatformField(v: unknown, where: string, digest: string): Platform {
  if (!isObject(v) || typeof v.os !== 'string' || typeof v.architecture !== 'string' || (v.variant !== undefined && typeof v.variant !== 'string')) {
    throw invalid('platform needs string os and architecture', where, { digest });
  }
  return { os: v.os, architecture: v.architecture, ...(typeof v.variant === 'string' && v.variant !== '' && { variant: v.variant }) };
}
