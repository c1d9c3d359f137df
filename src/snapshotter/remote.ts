/**
 * The seam between the snapshotter and the layer filesystem that serves remote
 * snapshots (spec §2.2). The snapshotter decides *when* a layer is mounted, checked and
 * unmounted; a RemoteLayers implementation decides *how* (IPFS, eStargz, FUSE).
 * `undefined` where the daemon runs without IPFS: every Prepare then takes the normal path.
 */
import { SgError, isSgError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { LABEL } from './types.js';

export interface RemoteLayers {
  /**
   * Mounts the layer the labels describe at `mountpoint` (an existing empty directory);
   * rejects (SgError) when it cannot be mounted lazily. Must stop when `signal` aborts;
   * a mount that still completes after the abort is unmounted by the caller.
   */
  mount(mountpoint: string, labels: Readonly<Record<string, string>>, signal: AbortSignal): Promise<void>;
  /** Availability check before mounts are handed out; rejects when the layer is unavailable. */
  check(mountpoint: string, labels: Readonly<Record<string, string>>): Promise<void>;
  /** A layer is mounted at `mountpoint` now (one a previous daemon run left served counts). */
  mounted(mountpoint: string): boolean;
  /**
   * Owner of the layer root mounted at `mountpoint`, or undefined when none is mounted
   * there. Lets the snapshotter avoid a synchronous stat of a FUSE mount.
   */
  rootOwner(mountpoint: string): { uid: number; gid: number } | undefined;
  /** Unmounts and releases the layer at `mountpoint`; rejects for an unknown mountpoint. */
  unmount(mountpoint: string): Promise<void>;
}

/** Upstream's budget for resolving and mounting one layer (spec §2.4). */
export const REMOTE_MOUNT_BUDGET_MS = 30_000;

/**
 * `remote.mount` bounded by `ms`. On timeout it rejects with TIMEOUT at once and, should
 * the mount still complete, unmounts it so that no stray mount covers the directory that
 * the fallback hands to containerd.
 */
export async function mountWithBudget(remote: RemoteLayers, mountpoint: string, labels: Readonly<Record<string, string>>, ms: number, log: Logger): Promise<void> {
  const controller = new AbortController();
  const mounting = remote.mount(mountpoint, labels, controller.signal);
  // A timer of our own rather than AbortSignal.timeout: that one is unref'd and would
  // let a process with nothing else to do exit while the mount hangs.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new SgError('TIMEOUT', `layer not mounted within ${ms} ms`, { mountpoint }));
    }, ms);
  });
  try {
    await Promise.race([mounting, timedOut]);
  } catch (err) {
    if (controller.signal.aborted) {
      mounting.then(
        () => remote.unmount(mountpoint).catch((e: unknown) => log.warn('failed to unmount a late remote mount', { mountpoint, error: e })),
        () => {},
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** What a fallback log line says about the layer: its digest and CID, where labels give them. */
export function describeLayer(labels: Readonly<Record<string, string>>): { layer?: string; cid?: string } {
  const layer = labels[LABEL.criLayerDigest] ?? labels[LABEL.stargzDigest];
  const url = (labels[LABEL.remoteUrls] ?? '').split(',').find((u) => u.startsWith('ipfs://'));
  return { ...(layer ? { layer } : {}), ...(url ? { cid: url.slice('ipfs://'.length) } : {}) };
}

/** A stable reason code for logs and the fallback metric. */
export const reasonCode = (err: unknown): string => (isSgError(err) ? err.code : 'IO');
