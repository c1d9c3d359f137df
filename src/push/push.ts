/**
 * `ipfs-push` (spec §1.8): an image in containerd → eStargz layers, OCI media types, every
 * blob in IPFS with `urls: ["ipfs://<CID>"]` → the CID of the root descriptor. The new
 * blobs are written to containerd under a lease, and the converted image is recorded as
 * `<ref>-esgz` before the lease goes, so it can also be run or pushed to a registry.
 *
 * The root keeps the shape of the source (as containerd's converter does): an index stays
 * an index (holding the manifests the platform filter keeps), a single manifest stays a
 * manifest. Same image and options → same blobs → same CID.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SgError, isSgError } from '../errors.js';
import type { Containerd } from '../containerd/client.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import { Converter } from './convert.js';
import type { PushListener } from './events.js';
import { marshalDescriptor } from './json.js';
import { kindOf, toOci } from './media-types.js';
import { Publisher, sha256 } from './publish.js';
import type { PlatformFilter } from './platforms.js';
import { asDesc, loadTree, type Node } from './tree.js';

/** A crashed push's lease (and the blobs only it holds) is collected after this. */
const LEASE_TTL_MS = 24 * 3600_000;

export interface PushOptions {
  readonly containerd: Containerd;
  readonly ipfs: IpfsClient;
  /** The image's name in containerd, e.g. `docker.io/library/busybox:latest`. */
  readonly ref: string;
  readonly estargz: boolean;
  readonly filter: PlatformFilter;
  readonly prioritizedFiles?: readonly string[];
  /** Where the work dir goes (default: the OS temp dir). */
  readonly tmpDir?: string;
  readonly onEvent?: PushListener;
  readonly signal?: AbortSignal;
}

export interface PushResult {
  /** CID of the root descriptor JSON: the image's IPFS reference. */
  readonly cid: string;
  readonly root: { readonly mediaType: string; readonly digest: string; readonly size: number; readonly urls: readonly string[] };
  /** Name of the converted image in containerd. */
  readonly image: string;
  /** Prioritized files that no layer has. */
  readonly missedPrioritizedFiles: readonly string[];
}

export const convertedName = (ref: string): string => `${ref}-esgz`;

export async function pushImage(o: PushOptions): Promise<PushResult> {
  const emit = o.onEvent ?? (() => {});
  const { containerd, signal } = o;
  const record = await containerd.images.get(o.ref).catch((err: unknown) => {
    if (!isSgError(err, 'NOT_FOUND')) throw err;
    throw new SgError('NOT_FOUND', `image ${o.ref} is not in containerd (namespace ${containerd.namespace}): pull or import it first`, { image: o.ref, namespace: containerd.namespace });
  });
  const lease = await containerd.leases.create('stargz-ipfs-push', LEASE_TTL_MS);
  let workDir: string | undefined;
  try {
    workDir = await mkdtemp(join(o.tmpDir ?? tmpdir(), 'stargz-ipfs-push-'));
    const content = containerd.content(lease);
    const target = { mediaType: record.target.mediaType, digest: record.target.digest, size: record.target.size, ...(record.target.annotations && { annotations: record.target.annotations }) };
    const tree = await loadTree({ content, filter: o.filter, image: o.ref, namespace: containerd.namespace, signal }, asDesc(target, `image ${o.ref} target`));
    const layerCount = countLayers(tree);
    emit({ type: 'start', image: o.ref, layers: layerCount, platforms: o.filter.describe });

    const publisher = new Publisher(content, o.ipfs, emit, signal);
    const converter = new Converter({ content, publisher, estargz: o.estargz, prioritizedFiles: o.prioritizedFiles ?? [], workDir, signal, emit, layerCount });
    const top = await converter.node(tree);

    const root = { mediaType: toOci(record.target.mediaType), digest: top.digest as string, size: top.size as number, urls: top.urls as string[] };
    const rootBytes = marshalDescriptor(root);
    const cid = await o.ipfs.add(rootBytes, signal);
    emit({ type: 'added', kind: 'root', digest: sha256(rootBytes), size: rootBytes.length, cid });

    const image = convertedName(o.ref);
    await containerd.images.put({ name: image, labels: {}, target: { mediaType: root.mediaType, digest: root.digest, size: root.size } });
    emit({ type: 'stored', image });
    return { cid, root, image, missedPrioritizedFiles: converter.missedPrioritizedFiles() };
  } finally {
    // The image record now holds what the lease held; after a failure, GC may take the
    // partial blobs. A lease that cannot be deleted now expires on its own.
    await containerd.leases.delete(lease).catch(() => undefined);
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  }
}

function countLayers(n: Node): number {
  const seen = new Set<string>();
  const walk = (x: Node): void => {
    if (x.kind === 'index') x.children.forEach(walk);
    else if (x.kind === 'manifest') for (const l of x.layers) if (kindOf(l.d.mediaType) === 'layer') seen.add(l.d.digest);
  };
  walk(n);
  return seen.size;
}
