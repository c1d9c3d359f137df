/**
 * A client-side pull of an IPFS image into containerd, like upstream's
 * `ctr-remote image rpull --ipfs` (spec §1.7) with containerd's unpacker done here:
 *
 * 1. resolve root CID → root descriptor → index → manifest (platform) → config, verified;
 * 2. store index/manifest/config in the content store under a lease, with the GC labels
 *    containerd's fetch handlers set (index → manifest, manifest → config and layers);
 * 3. unpack layer by layer: Prepare `extract-… <chainID>` on the snapshotter with the layer's
 *    labels; AlreadyExists + Stat(chainID) = a remote snapshot (lazy, nothing downloaded);
 *    otherwise fetch the blob from IPFS into the content store, apply it with containerd's
 *    Diff service, check the diffID and Commit(chainID);
 * 4. label the config `containerd.io/gc.ref.snapshot.<snapshotter>=<top chainID>` and
 *    create (or update) the image record named by the CID; drop the lease.
 */
import { performance } from 'node:perf_hooks';
import type { Containerd } from '../containerd/client.js';
import type { ContentStore } from '../containerd/content.js';
import { DiffClient } from '../containerd/diff.js';
import { SgError, isSgError, errorMessage } from '../errors.js';
import type { ResolvedImage } from '../ipfs/oci-resolver.js';
import { isIndexType, parseJson, type IpfsDescriptor, type Platform } from '../ipfs/oci.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import { chainIds, unpackKey } from './chain.js';
import { LABELS, layerLabels } from './labels.js';
import { ContainerdSnapshots } from './snapshots.js';
import { ipfsDown, resolveForPull, type Resolved } from './resolve.js';

export type PullEvent =
  | { type: 'resolved'; cid: string; layers: number; ms: number }
  | { type: 'fetching'; digest: string; mediaType: string }
  | { type: 'layer'; index: number; total: number; digest: string; outcome: LayerOutcome; ms: number; bytes: number };

/** `lazy`: a remote snapshot; `pulled`: fetched, applied, committed; `present`: already unpacked. */
export type LayerOutcome = 'lazy' | 'pulled' | 'present';

export interface PullOptions {
  readonly containerd: Containerd;
  readonly ipfs: IpfsClient;
  /** `CID` or `ipfs://CID`. */
  readonly ref: string;
  readonly snapshotter: string;
  readonly useContainerdLabels?: boolean;
  readonly skipVerify?: boolean;
  readonly platform?: Platform;
  readonly onEvent?: (e: PullEvent) => void;
  readonly signal?: AbortSignal;
  /** A resolve already started (resolveForPull); otherwise rpull resolves `ref` itself. */
  readonly resolved?: Promise<Resolved>;
}

export interface LayerResult {
  readonly digest: string;
  readonly chainId: string;
  readonly outcome: LayerOutcome;
  readonly ms: number;
  readonly bytes: number;
}

export interface PullResult {
  /** The image name in containerd: the root CID. */
  readonly name: string;
  readonly target: IpfsDescriptor;
  readonly topChainId: string;
  readonly layers: readonly LayerResult[];
  /** Bytes read from IPFS: documents plus the layers fetched whole. */
  readonly bytesFetched: number;
  readonly timings: { readonly resolveMs: number; readonly contentMs: number; readonly unpackMs: number; readonly totalMs: number };
}

const GC = {
  snapshot: (sn: string) => `containerd.io/gc.ref.snapshot.${sn}`,
  config: 'containerd.io/gc.ref.content.config',
  layer: (i: number) => `containerd.io/gc.ref.content.l.${i}`,
  manifest: (i: number) => `containerd.io/gc.ref.content.m.${i}`,
};
const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';
const LEASE_EXPIRY_MS = 60 * 60_000;
/** Layers fetched at once when every layer must be downloaded. */
const FETCH_CONCURRENCY = 3;
/** As containerd's unpacker: a Prepare that races a concurrent remove is tried again. */
const PREPARE_TRIES = 3;

export async function rpull(opts: PullOptions): Promise<PullResult> {
  const t0 = performance.now();
  const { containerd, ipfs, snapshotter, signal } = opts;
  const emit = opts.onEvent ?? (() => {});

  // The lease (the first call to containerd, with its connection set-up) is taken while IPFS answers.
  const leasing = containerd.leases.create('stargz-ipfs-rpull', LEASE_EXPIRY_MS);
  leasing.catch(() => {}); // seen when awaited below; not an unhandled rejection meanwhile
  let resolved: Resolved;
  try {
    resolved = await (opts.resolved ?? resolveForPull(ipfs, opts.ref, opts.platform, signal));
  } catch (err) {
    await leasing.then((id) => containerd.leases.delete(id)).catch(() => {});
    throw err;
  }
  const { image, ms: resolveMs } = resolved;
  emit({ type: 'resolved', cid: image.rootCid, layers: image.layers.length, ms: resolveMs });
  const lease = await leasing;
  const diffIds = image.config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== image.layers.length) {
    await containerd.leases.delete(lease).catch(() => {});
    throw new SgError('INVALID_ARGUMENT', 'image config lists another number of diff_ids than the manifest has layers', {
      cid: image.rootCid,
      layers: image.layers.length,
      diffIds: diffIds.length,
    });
  }
  const chain = chainIds(diffIds);
  let documentBytes = 0;
  for (const b of image.blobs.values()) documentBytes += b.length;

  const content = containerd.content(lease);
  const session = { address: containerd.address, namespace: containerd.namespace, lease };
  const snapshots = new ContainerdSnapshots(containerd.service('snapshots'), session, snapshotter);
  const diff = new DiffClient(containerd.service('diff'), session);
  // Ends downloads still running when the pull fails (or is interrupted).
  const work = new AbortController();
  const stopWork = () => work.abort();
  signal?.addEventListener('abort', stopWork, { once: true });
  try {
    // The documents are stored while the layers unpack: the unpack needs only the parsed config.
    const t1 = performance.now();
    let contentMs = 0;
    const documents = storeDocuments(image, content, emit, work.signal).then(() => void (contentMs = performance.now() - t1));
    documents.catch(() => {});

    const fetcher = new LayerFetcher(image.layers, ipfs, content, emit, work.signal);
    if (snapshotter !== 'stargz') fetcher.startAll();
    const layers: LayerResult[] = [];
    // Which layers are unpacked already: one round trip for all of them.
    const present = await Promise.all(chain.map((id) => exists(snapshots, id)));
    try {
      for (const [i, layer] of image.layers.entries()) {
        work.signal.throwIfAborted();
        const started = performance.now();
        const labels = layerLabels(image.layers, i, {
          ref: image.rootCid,
          manifestDigest: image.manifestDescriptor.digest,
          useContainerdLabels: opts.useContainerdLabels ?? false,
          skipVerify: opts.skipVerify ?? false,
        });
        labels[LABELS.snapshotRef] = chain[i]!;
        const r = present[i] ? { outcome: 'present' as const, bytes: 0 } : await unpackLayer({ i, layer, diffId: diffIds[i]!, chainId: chain[i]!, parent: i === 0 ? '' : chain[i - 1]!, labels, snapshots, diff, fetcher, content });
        const ms = performance.now() - started;
        layers.push({ digest: layer.digest, chainId: chain[i]!, outcome: r.outcome, ms, bytes: r.bytes });
        emit({ type: 'layer', index: i + 1, total: image.layers.length, digest: layer.digest, outcome: r.outcome, ms, bytes: r.bytes });
      }
    } finally {
      fetcher.discard();
    }
    await documents;
    const unpackMs = performance.now() - t1;
    const topChainId = chain.at(-1) ?? '';
    const target = image.rootDescriptor;
    await Promise.all([
      topChainId === '' ? undefined : content.updateLabels(image.configDescriptor.digest, { [GC.snapshot(snapshotter)]: topChainId }),
      containerd.images.put({
        name: image.rootCid,
        labels: {},
        target: { mediaType: target.mediaType, digest: target.digest, size: target.size, ...(target.annotations && { annotations: target.annotations }) },
      }),
    ]);
    const bytesFetched = documentBytes + layers.reduce((n, l) => n + l.bytes, 0);
    return { name: image.rootCid, target, topChainId, layers, bytesFetched, timings: { resolveMs, contentMs, unpackMs, totalMs: performance.now() - t0 } };
  } finally {
    signal?.removeEventListener('abort', stopWork);
    work.abort();
    await containerd.leases.delete(lease).catch(() => {});
  }
}

/** Index(es), manifest and config, each with the GC labels that keep its children alive. */
async function storeDocuments(image: ResolvedImage, content: ContentStore, emit: (e: PullEvent) => void, signal?: AbortSignal): Promise<void> {
  const { manifestDescriptor: m, configDescriptor: c, manifest } = image;
  emit({ type: 'fetching', digest: c.digest, mediaType: c.mediaType });
  await content.write(`config-${c.digest}`, c, image.blobs.get(c.digest)!, {}, signal);
  const manifestLabels: Record<string, string> = { [GC.config]: c.digest };
  manifest.layers.forEach((l, i) => (manifestLabels[GC.layer(i)] = l.digest));
  emit({ type: 'fetching', digest: m.digest, mediaType: m.mediaType });
  await content.write(`manifest-${m.digest}`, m, image.blobs.get(m.digest)!, manifestLabels, signal);
  // Indexes: label only the children that were fetched (the chosen platform), as containerd does.
  for (const [digest, bytes] of image.blobs) {
    if (digest === m.digest || digest === c.digest) continue;
    const doc = parseJson(bytes, 'image index');
    const children = Array.isArray(doc.manifests) ? (doc.manifests as { digest?: unknown }[]) : [];
    const labels: Record<string, string> = {};
    children.filter((d) => typeof d.digest === 'string' && image.blobs.has(d.digest)).forEach((d, i) => (labels[GC.manifest(i)] = d.digest as string));
    const mediaType = typeof doc.mediaType === 'string' && isIndexType(doc.mediaType) ? doc.mediaType : 'application/vnd.oci.image.index.v1+json';
    emit({ type: 'fetching', digest, mediaType });
    await content.write(`index-${digest}`, { digest, size: bytes.length }, bytes, labels, signal);
  }
}

/** Whole layer blobs from IPFS into the content store, each at most once; started on demand or all at once. */
class LayerFetcher {
  private readonly started = new Map<number, Promise<number>>();
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly layers: readonly IpfsDescriptor[],
    private readonly ipfs: IpfsClient,
    private readonly content: ContentStore,
    private readonly emit: (e: PullEvent) => void,
    private readonly signal?: AbortSignal,
  ) {}

  startAll(): void {
    for (let i = 0; i < this.layers.length; i++) this.fetch(i).catch(() => {});
  }

  /** Bytes downloaded for layer `i` (0 when the store already had it). */
  fetch(i: number): Promise<number> {
    let p = this.started.get(i);
    if (!p) {
      p = this.slot().then(() => this.download(this.layers[i]!)).finally(() => this.release());
      this.started.set(i, p);
    }
    return p;
  }

  /** Nothing more is queued; running downloads finish on their own. */
  discard(): void {
    this.queue.length = 0;
  }

  private slot(): Promise<void> {
    if (this.running < FETCH_CONCURRENCY) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(() => (this.running++, resolve())));
  }

  private release(): void {
    this.running--;
    this.queue.shift()?.();
  }

  private async download(layer: IpfsDescriptor): Promise<number> {
    const have = await this.content.info(layer.digest).then(
      (info) => info.size === layer.size,
      (err: unknown) => {
        if (isSgError(err, 'NOT_FOUND')) return false;
        throw err;
      },
    );
    if (have) return 0;
    this.emit({ type: 'fetching', digest: layer.digest, mediaType: layer.mediaType });
    let bytes = 0;
    const counted = async function* (src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      for await (const chunk of src) {
        bytes += chunk.length;
        yield chunk;
      }
    };
    try {
      // The store checks size and digest at commit: a wrong blob is never stored.
      await this.content.write(`layer-${layer.digest}`, layer, counted(this.ipfs.catStream(layer.cid, { offset: 0, length: layer.size }, this.signal)), {}, this.signal);
    } catch (err) {
      throw ipfsDown(err);
    }
    return bytes;
  }
}

interface UnpackStep {
  readonly i: number;
  readonly layer: IpfsDescriptor;
  readonly diffId: string;
  readonly chainId: string;
  readonly parent: string;
  readonly labels: Record<string, string>;
  readonly snapshots: ContainerdSnapshots;
  readonly diff: DiffClient;
  readonly fetcher: LayerFetcher;
  readonly content: ContentStore;
}

async function exists(snapshots: ContainerdSnapshots, key: string): Promise<boolean> {
  return snapshots.stat(key).then(
    () => true,
    (err: unknown) => {
      if (isSgError(err, 'NOT_FOUND')) return false;
      throw err;
    },
  );
}

async function unpackLayer(s: UnpackStep): Promise<{ outcome: LayerOutcome; bytes: number }> {
  const { snapshots, chainId } = s;
  for (let attempt = 1; ; attempt++) {
    const key = unpackKey(chainId);
    let mounts;
    try {
      mounts = await snapshots.prepare(key, s.parent, s.labels);
    } catch (err) {
      if (!isSgError(err, 'ALREADY_EXISTS')) throw err;
      // The snapshotter mounted the layer itself (or someone unpacked it meanwhile).
      if (await exists(snapshots, chainId)) return { outcome: 'lazy', bytes: 0 };
      if (attempt >= PREPARE_TRIES) throw new SgError('FAILED_PRECONDITION', 'snapshot reported to exist was not found', { chainId, snapshotter: snapshots.snapshotter });
      continue;
    }
    try {
      const bytes = await s.fetcher.fetch(s.i);
      const applied = await s.diff.apply(s.layer, mounts);
      if (applied.digest !== s.diffId) {
        throw new SgError('CORRUPT', 'applied layer has another diffID than the image config says', { digest: s.layer.digest, diffId: s.diffId, applied: applied.digest });
      }
      try {
        await snapshots.commit(chainId, key, s.labels);
      } catch (err) {
        if (!isSgError(err, 'ALREADY_EXISTS')) throw err;
        await snapshots.remove(key).catch(() => {});
      }
      await s.content.updateLabels(s.layer.digest, { [UNCOMPRESSED_LABEL]: applied.digest }).catch(() => {});
      return { outcome: 'pulled', bytes };
    } catch (err) {
      await snapshots.remove(key).catch(() => {});
      throw new SgError(isSgError(err) ? err.code : 'IO', `layer ${s.i + 1}: ${errorMessage(err)}`, { digest: s.layer.digest }, { cause: err });
    }
  }
}
