/**
 * The annotations a client-side pull puts on each layer so that containerd forwards them
 * to the snapshotter as Prepare labels (spec §1.5, §2.3): stargz's default set
 * (`ctr-remote rpull`) or containerd's CRI set plus stargz's extra labels
 * (`--use-containerd-labels`, nerdctl). Each label (key + value) stays within containerd's
 * 4096-byte limit: layer lists are cut short rather than rejected.
 */
import type { IpfsDescriptor } from '../ipfs/oci.js';

export const LABELS = {
  snapshotRef: 'containerd.io/snapshot.ref',
  remoteUrls: 'containerd.io/snapshot/remote/urls',
  stargzReference: 'containerd.io/snapshot/remote/stargz.reference',
  stargzDigest: 'containerd.io/snapshot/remote/stargz.digest',
  stargzLayers: 'containerd.io/snapshot/remote/stargz.layers',
  prefetch: 'containerd.io/snapshot/remote/stargz.prefetch',
  skipVerify: 'containerd.io/snapshot/remote/stargz.skipverify',
  criImageRef: 'containerd.io/snapshot/cri.image-ref',
  criLayerDigest: 'containerd.io/snapshot/cri.layer-digest',
  criImageLayers: 'containerd.io/snapshot/cri.image-layers',
  criManifestDigest: 'containerd.io/snapshot/cri.manifest-digest',
} as const;

/** Prefix of annotations containerd's unpacker forwards to the snapshotter. */
export const SNAPSHOT_LABEL_PREFIX = 'containerd.io/snapshot/';
/** containerd's limit on a label's key and value together. */
export const MAX_LABEL_BYTES = 4096;
/** What `ctr-remote rpull` and nerdctl ask the snapshotter to prefetch. */
export const DEFAULT_PREFETCH_BYTES = 10 * 1024 * 1024;

export interface LabelOptions {
  /** The image reference: the root CID. */
  readonly ref: string;
  readonly manifestDigest: string;
  readonly useContainerdLabels: boolean;
  readonly skipVerify: boolean;
  readonly prefetchBytes?: number;
}

/** Joins as many `items` as fit in one label named `key`. */
export function fitLabel(key: string, items: readonly string[], sep = ','): string {
  let value = '';
  for (const item of items) {
    const next = value === '' ? item : `${value}${sep}${item}`;
    if (Buffer.byteLength(key) + Buffer.byteLength(next) > MAX_LABEL_BYTES) break;
    value = next;
  }
  return value;
}

/** Labels for layer `i` of `layers` (without `containerd.io/snapshot.ref`, which the unpacker adds). */
export function layerLabels(layers: readonly IpfsDescriptor[], i: number, opts: LabelOptions): Record<string, string> {
  const layer = layers[i]!;
  const labels: Record<string, string> = {};
  // The layer's own annotations under the forwarded prefix (toc.digest) ride along.
  for (const [k, v] of Object.entries(layer.annotations ?? {})) if (k.startsWith(SNAPSHOT_LABEL_PREFIX)) labels[k] = v;
  const upward = layers.slice(i);
  const digests = upward.map((l) => l.digest);
  if (opts.useContainerdLabels) {
    labels[LABELS.criImageRef] = opts.ref;
    labels[LABELS.criLayerDigest] = layer.digest;
    labels[LABELS.criManifestDigest] = opts.manifestDigest;
    labels[LABELS.criImageLayers] = fitLabel(LABELS.criImageLayers, digests);
  } else {
    labels[LABELS.stargzReference] = opts.ref;
    labels[LABELS.stargzDigest] = layer.digest;
    labels[LABELS.stargzLayers] = fitLabel(LABELS.stargzLayers, digests);
  }
  labels[LABELS.remoteUrls] = fitLabel(LABELS.remoteUrls, layer.urls ?? []);
  // Neighbours' URLs, indexed like the layers label, for parallel pre-resolution.
  const listed = (labels[LABELS.criImageLayers] ?? labels[LABELS.stargzLayers] ?? '').split(',').filter(Boolean).length;
  for (let j = 0; j < listed; j++) {
    const key = `${LABELS.remoteUrls}.${j}`;
    const urls = fitLabel(key, upward[j]!.urls ?? []);
    if (urls !== '') labels[key] = urls;
  }
  labels[LABELS.prefetch] = String(opts.prefetchBytes ?? DEFAULT_PREFETCH_BYTES);
  if (opts.skipVerify) labels[LABELS.skipVerify] = 'true';
  return labels;
}
