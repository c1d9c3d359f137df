/**
 * The daemon's RemoteLayers: labels of a remote snapshot → blob source → verified eStargz
 * layer → FUSE mount, plus the availability check and unmount (spec §2.2, §3.1, §2.7).
 * Which blob source serves a layer is injected (`resolveSource`), so this module knows
 * neither IPFS nor any other transport.
 */
import { SgError } from '../errors.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { BlobSource } from '../source/blob-source.js';
import type { RemoteLayers } from '../snapshotter/remote.js';
import { mountLayer, type Mounted } from '../fuse/mount.js';
import { openEstargz, type Estargz } from '../estargz/index.js';
import { openLayer, type LayerDeps, type OpenedLayer } from './open-layer.js';

export const LAYER_LABEL = {
  tocDigest: 'containerd.io/snapshot/stargz/toc.digest',
  criLayerDigest: 'containerd.io/snapshot/cri.layer-digest',
  stargzDigest: 'containerd.io/snapshot/remote/stargz.digest',
  prefetch: 'containerd.io/snapshot/remote/stargz.prefetch',
  skipVerify: 'containerd.io/snapshot/remote/stargz.skipverify',
  stargzLayers: 'containerd.io/snapshot/remote/stargz.layers',
  criImageLayers: 'containerd.io/snapshot/cri.image-layers',
  urls: 'containerd.io/snapshot/remote/urls',
} as const;

/** How long a neighbour resolved ahead waits for its own Prepare (upstream's resolve_result_entry_ttl_sec). */
const RESOLVED_TTL_MS = 120_000;

export type SourceResolver = (labels: Readonly<Record<string, string>>, signal?: AbortSignal) => Promise<BlobSource>;

interface Entry {
  readonly digest: string;
  readonly opened: OpenedLayer;
  readonly mounted: Mounted;
  readonly labels: Readonly<Record<string, string>>;
  lastCheck: number;
}

export interface LayerMountsOptions {
  readonly config: Config;
  readonly deps: LayerDeps;
  readonly resolveSource: SourceResolver;
  readonly opaqueXattr: 'trusted' | 'user';
  readonly log: Logger;
}

export class LayerMounts implements RemoteLayers {
  private readonly entries = new Map<string, Entry>();
  /**
   * Neighbour layers being resolved ahead of their own Prepare (spec §1.0 step 5), by
   * layer digest and urls label: blob found, footer and TOC fetched and parsed.
   */
  private readonly resolved = new Map<string, { readonly at: number; readonly p: Promise<Estargz> }>();

  constructor(private readonly opts: LayerMountsOptions) {}

  /** Per-layer sizes for the metrics endpoint. */
  *sizes(): Iterable<{ digest: string; mountpoint: string; fetched: number; prefetched: number; size: number }> {
    for (const [mountpoint, e] of this.entries) {
      const state = e.opened.layer.state();
      yield { digest: e.digest, mountpoint, fetched: state.fetchedSize, prefetched: 0, size: state.size };
    }
  }

  async mount(mountpoint: string, labels: Readonly<Record<string, string>>, signal: AbortSignal): Promise<void> {
    const { config } = this.opts;
    const digest = labels[LAYER_LABEL.criLayerDigest] ?? labels[LAYER_LABEL.stargzDigest];
    if (!digest) throw new SgError('INVALID_ARGUMENT', 'no layer digest label', { mountpoint });
    const tocDigest = this.expectedTocDigest(labels, digest);
    const started = Date.now();
    const resolved = await this.takeResolved(digest, labels[LAYER_LABEL.urls], signal);
    signal.throwIfAborted();
    const source = resolved?.source ?? (await this.opts.resolveSource(labels, signal));
    const prefetchLabel = Number(labels[LAYER_LABEL.prefetch]);
    const opened = await openLayer(
      source,
      {
        digest,
        tocDigest,
        prefetchSize: Number.isSafeInteger(prefetchLabel) && prefetchLabel >= 0 ? prefetchLabel : config.prefetch_size,
        noPrefetch: config.noprefetch,
        noBackgroundFetch: config.no_background_fetch,
        fetchAlignBytes: config.blob.chunk_size,
        resolved,
        opaqueXattr: this.opts.opaqueXattr,
        signal,
      },
      this.opts.deps,
    );
    let mounted: Mounted;
    try {
      signal.throwIfAborted();
      mounted = await mountLayer(opened.layer, mountpoint, {
        attrTimeoutSec: config.fuse.attr_timeout,
        entryTimeoutSec: config.fuse.entry_timeout,
        passthrough: config.fuse.passthrough,
        log: this.opts.log.child({ layer: digest }),
      });
    } catch (err) {
      opened.close();
      throw err;
    }
    this.entries.set(mountpoint, { digest, opened, mounted, labels, lastCheck: Date.now() });
    // Only now: resolving the next layers while this one is fetched and mounted would compete
    // with it for the IPFS node and this event loop, and containerd sends their Prepare only
    // after this one has returned.
    this.resolveNeighbours(labels, digest);
    this.opts.log.info('layer mounted', { layer: digest, blob: source.describe, mountpoint, ms: Date.now() - started, resolvedAhead: resolved !== undefined });
  }

  async check(mountpoint: string, labels: Readonly<Record<string, string>>): Promise<void> {
    const e = this.entries.get(mountpoint);
    if (!e) throw new SgError('UNAVAILABLE', 'layer not registered', { mountpoint });
    const { config } = this.opts;
    const validMs = config.blob.check_always ? 0 : config.blob.valid_interval * 1000;
    if (e.opened.layer.state().fetchedPercent < 100 && Date.now() - e.lastCheck >= validMs) {
      // A fresh resolve: re-reads where the blob lives and that it is still there.
      const source = await this.opts.resolveSource(labels);
      if ((await source.size()) !== e.opened.estargz.blobSize) throw new SgError('UNAVAILABLE', 'blob size changed', { mountpoint, blob: source.describe });
      e.lastCheck = Date.now();
    }
    if (!config.noprefetch) await waitAtMost(e.opened.prefetched, config.prefetch_timeout_sec * 1000);
  }

  mounted(mountpoint: string): boolean {
    return this.entries.has(mountpoint);
  }

  /** Every mountpoint served now. */
  mountpoints(): string[] {
    return [...this.entries.keys()];
  }

  rootOwner(mountpoint: string): { uid: number; gid: number } | undefined {
    const root = this.entries.get(mountpoint)?.opened.estargz.model.root;
    return root && { uid: root.uid, gid: root.gid };
  }

  async unmount(mountpoint: string): Promise<void> {
    const e = this.entries.get(mountpoint);
    if (!e) throw new SgError('NOT_FOUND', 'layer not registered', { mountpoint });
    this.entries.delete(mountpoint);
    e.opened.close();
    await e.mounted.unmount();
  }

  /**
   * Starts resolving the layers named beside this one (the layers label, each with its
   * `remote/urls.<i>`), so that their own Prepare, which containerd sends one after the
   * other, finds the TOC already fetched and parsed. Their TOC digests are checked then,
   * against their own labels; nothing is mounted or served before.
   */
  private resolveNeighbours(labels: Readonly<Record<string, string>>, self: string): void {
    const now = Date.now();
    for (const [key, r] of this.resolved) if (now - r.at > RESOLVED_TTL_MS) this.resolved.delete(key);
    const list = (labels[LAYER_LABEL.stargzLayers] ?? labels[LAYER_LABEL.criImageLayers] ?? '').split(',');
    list.forEach((digest, i) => {
      const urls = labels[`${LAYER_LABEL.urls}.${i}`];
      if (!urls || !digest || digest === self) return;
      const key = `${digest} ${urls}`;
      if (this.resolved.has(key) || [...this.entries.values()].some((e) => e.digest === digest)) return;
      const p = this.opts.resolveSource({ ...labels, [LAYER_LABEL.urls]: urls }).then((source) => openEstargz(source));
      // A failure here is only a missed head start: the layer's own Prepare resolves again.
      p.catch((err: unknown) => this.opts.log.debug('neighbour layer not resolved ahead', { layer: digest, err }));
      this.resolved.set(key, { at: now, p });
    });
  }

  /**
   * The layer resolved ahead under these urls, if that worked; taken, so used once. Waiting
   * for it ends with the Prepare's own signal (the caller then fails on that signal).
   */
  private async takeResolved(digest: string, urls: string | undefined, signal: AbortSignal): Promise<Estargz | undefined> {
    const key = `${digest} ${urls}`;
    const r = this.resolved.get(key);
    if (!r) return undefined;
    this.resolved.delete(key);
    let onAbort = () => {};
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([r.p.catch(() => undefined), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The TOC digest to verify against, or undefined when verification is explicitly off. */
  private expectedTocDigest(labels: Readonly<Record<string, string>>, digest: string): string | undefined {
    const { config } = this.opts;
    if (config.disable_verification) return undefined;
    const toc = labels[LAYER_LABEL.tocDigest];
    if (toc) return toc;
    if (labels[LAYER_LABEL.skipVerify] === 'true' && config.allow_no_verification) return undefined;
    throw new SgError('FAILED_PRECONDITION', 'digest of TOC JSON must be passed', { layer: digest, label: LAYER_LABEL.tocDigest });
  }
}

/** Waits for `p`, but no longer than `ms` (a timeout is not an error, as upstream). */
async function waitAtMost(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
