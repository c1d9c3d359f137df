/**
 * The snapshotter's vocabulary, as in containerd's snapshots package.
 *
 * A snapshot is named by a *key* while it is active (or a view) and by a *name* once
 * committed; both live in one namespace. Its *parent* is always a committed snapshot.
 * containerd prefixes keys with `<namespace>/<sequence>/` before they reach us, so we
 * treat them as opaque strings.
 */
export type Kind = 'view' | 'active' | 'committed';

export type Labels = Record<string, string>;

export interface Info {
  readonly name: string;
  /** Name of the parent, '' for none. */
  readonly parent: string;
  readonly kind: Kind;
  /** Microseconds since the epoch (wall clock, millisecond resolution). */
  readonly created: number;
  readonly updated: number;
  readonly labels: Readonly<Labels>;
}

export interface Usage {
  /** Bytes on disk (allocated blocks, hard links counted once). */
  readonly size: number;
  readonly inodes: number;
}

export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/** Labels of the remote-snapshot protocol (shared/spec/upstream-behaviour.md §2.2–2.3). */
export const LABEL = {
  /** Set by containerd's unpacker: the chainID to commit a remote snapshot under. */
  targetRef: 'containerd.io/snapshot.ref',
  /** Set by us on a committed remote snapshot. */
  remote: 'containerd.io/snapshot/remote',
  /** Comma-joined layer descriptor urls (`ipfs://<CID>`). */
  remoteUrls: 'containerd.io/snapshot/remote/urls',
  criLayerDigest: 'containerd.io/snapshot/cri.layer-digest',
  stargzDigest: 'containerd.io/snapshot/remote/stargz.digest',
} as const;

export const REMOTE_LABEL_VALUE = 'remote snapshot';

/** containerd's limit on one label: key and value together. */
export const MAX_LABEL_BYTES = 4096;

/** Wall-clock microseconds since the epoch; stored as an integer, well inside 2^53. */
export const nowMicros = (): number => Date.now() * 1000;
