/**
 * The snapshotter: containerd's overlayfs snapshotter (core/snapshots/overlay) plus the
 * remote-snapshot handshake of upstream's stargz snapshotter (spec §2).
 *
 * State changes happen inside MetaStore transactions. A new snapshot's directory is built
 * under a temp name and renamed to its id inside the transaction that records it, so a
 * crash leaves either both or an orphan directory, which start-up and Cleanup delete.
 * Directories of removed snapshots are deleted after their transaction commits, and only
 * once nothing is mounted inside them.
 *
 * Layout under `<root>/snapshotter`: `metadata.db`, `snapshots/<id>/{fs,work}`; `fs` is the
 * upper dir, or for a remote snapshot the mountpoint of its layer.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { lchownSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SgError, isSgError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { remoteSnapshotFallbacks } from '../metrics/metrics.js';
import { parseFilters } from './filters.js';
import { mountsBelow } from './mount-table.js';
// Bounded and escalating (plain, lazy, FUSE connection abort): a stale FUSE mount whose
// server hangs must not hang the snapshotter.
import { detach } from '../fuse/kernel-mount.js';
import { buildMounts, fsDir, needsUserXattr } from './mounts.js';
import { REMOTE_MOUNT_BUDGET_MS, describeLayer, mountWithBudget, reasonCode, type RemoteLayers } from './remote.js';
import { MetaStore, type ChainLink, type Snapshot } from './store.js';
import { LABEL, REMOTE_LABEL_VALUE, type Info, type Labels, type Mount, type Usage } from './types.js';
import { diskUsage } from './usage.js';

export interface SnapshotterOptions {
  /** Daemon root; the snapshotter keeps its state in `<root>/snapshotter`. */
  readonly root: string;
  readonly log: Logger;
  /** The layer filesystem for remote snapshots; undefined when IPFS mode is off. */
  readonly remote?: RemoteLayers;
  /** Start even when a remote snapshot cannot be mounted again ([snapshotter] key). */
  readonly allowInvalidMountsOnRestart?: boolean;
  /** Budget for one remote mount; upstream's 30 s unless a test says otherwise. */
  readonly remoteMountBudgetMs?: number;
}

const REMOTE = parseFilters([`labels."${LABEL.remote}"`]);

export class Snapshotter {
  private readonly snapshotsDir: string;
  private readonly userxattr = needsUserXattr();
  /** Directory names under snapshots/ that a request is deleting right now. */
  private readonly busy = new Set<string>();
  private closed = false;

  private constructor(
    private readonly store: MetaStore,
    root: string,
    private readonly log: Logger,
    private readonly remote: RemoteLayers | undefined,
    private readonly budgetMs: number,
  ) {
    this.snapshotsDir = join(root, 'snapshots');
  }

  /**
   * Opens (or creates) the store and brings the disk in line with it: detaches mounts a
   * previous run left under snapshots/, deletes orphan directories, mounts every remote
   * snapshot again from its stored labels (spec §2.8).
   */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    const root = join(opts.root, 'snapshotter');
    await mkdir(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    const store = new MetaStore(join(root, 'metadata.db'));
    const s = new Snapshotter(store, root, opts.log, opts.remote, opts.remoteMountBudgetMs ?? REMOTE_MOUNT_BUDGET_MS);
    try {
      await s.detachStaleMounts();
      await s.cleanup();
      await s.restoreRemoteSnapshots(opts.allowInvalidMountsOnRestart ?? false);
    } catch (err) {
      store.close();
      throw err;
    }
    return s;
  }

  /**
   * An active snapshot on `parent`. With label `containerd.io/snapshot.ref` and remote
   * layers available, first tries to mount the layer lazily: on success the snapshot is
   * committed under the ref and AlreadyExists tells containerd to skip the layer; on
   * failure it logs `remote-snapshot-prepared=false` and returns ordinary mounts.
   */
  async prepare(key: string, parent: string, labels: Readonly<Labels>): Promise<Mount[]> {
    const s = this.createSnapshot('active', key, parent, labels);
    const target = labels[LABEL.targetRef];
    if (target !== undefined && this.remote && (await this.prepareRemote(this.remote, key, s, target, labels))) {
      throw new SgError('ALREADY_EXISTS', `target snapshot "${target}": already exists`, { key, target });
    }
    await this.checkAvailability(parent === '' ? [] : this.store.chain(parent, true));
    return buildMounts(this.snapshotsDir, s, this.userxattr);
  }

  async view(key: string, parent: string, labels: Readonly<Labels>): Promise<Mount[]> {
    const s = this.createSnapshot('view', key, parent, labels);
    await this.checkAvailability(parent === '' ? [] : this.store.chain(parent, true));
    return buildMounts(this.snapshotsDir, s, this.userxattr);
  }

  async mounts(key: string): Promise<Mount[]> {
    const s = this.store.getSnapshot(key);
    await this.checkAvailability(this.store.chain(key, true));
    return buildMounts(this.snapshotsDir, s, this.userxattr);
  }

  /** Commits active `key` as `name`; `parent` rebases a parentless snapshot (containerd 2.x). */
  async commit(name: string, key: string, labels: Readonly<Labels>, parent = ''): Promise<void> {
    if (name === '') throw new SgError('INVALID_ARGUMENT', 'snapshot name must not be empty', { key });
    if (this.store.has(name)) {
      throw new SgError('ALREADY_EXISTS', `committed snapshot ${name}: already exists`, { key, name });
    }
    const { id, info } = this.store.getInfo(key);
    if (info.kind !== 'active') throw new SgError('FAILED_PRECONDITION', `snapshot "${key}" is not active`, { key });
    const usage = await diskUsage(fsDir(this.snapshotsDir, id));
    this.store.tx(() => {
      if (this.store.getInfo(key).id !== id) throw new SgError('FAILED_PRECONDITION', `snapshot "${key}" changed during commit`, { key });
      this.store.commitActive(key, name, usage, labels, parent);
    });
  }

  /** Removes the record, then the directory (unmounting a remote layer first). */
  async remove(key: string): Promise<void> {
    const { id } = this.store.tx(() => this.store.remove(key));
    await this.removeDir(id);
  }

  stat(key: string): Info {
    return this.store.getInfo(key).info;
  }

  update(info: Pick<Info, 'name' | 'labels'>, paths: readonly string[]): Info {
    return this.store.tx(() => this.store.updateInfo(info, paths));
  }

  /** Snapshots matching any of `filters` (containerd filter syntax; none = all). */
  list(filters: readonly string[]): Info[] {
    return this.store.walk(parseFilters(filters)).map((e) => e.info);
  }

  /** Active: scanned now. Committed: measured at commit (remote snapshots: 0). */
  async usage(key: string): Promise<Usage> {
    const { id, info, usage } = this.store.getInfo(key);
    return info.kind === 'active' ? diskUsage(fsDir(this.snapshotsDir, id)) : usage;
  }

  /** Deletes every directory under snapshots/ that belongs to no snapshot. */
  async cleanup(): Promise<void> {
    const names = await readdir(this.snapshotsDir);
    // Read the ids after the directory: a snapshot recorded meanwhile is then known.
    const known = this.store.ids();
    for (const name of names) {
      if (known.has(name) || this.busy.has(name)) continue;
      await this.removeDir(name);
    }
  }

  /**
   * Graceful stop: unmounts the remote layers (the chunk cache persists, so the next
   * start mounts them again cheaply) and closes the store. Snapshot directories stay.
   * `keepRemoteMounts` leaves the layers mounted, for a layer server that outlives us.
   */
  async close(opts: { keepRemoteMounts?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.remote && !opts.keepRemoteMounts) {
      for (const { id } of this.store.walk(REMOTE)) {
        const mp = fsDir(this.snapshotsDir, id);
        await this.remote.unmount(mp).catch((err: unknown) => this.log.warn('failed to unmount remote snapshot', { mountpoint: mp, error: err }));
      }
    }
    this.store.close();
  }

  /**
   * Synchronous on purpose: the skeleton is a handful of metadata syscalls, cheaper than
   * the thread-pool round trips of their async forms, and no other request (a Cleanup
   * scanning for orphans) can run between creating the temp dir and renaming it.
   */
  private createSnapshot(kind: 'active' | 'view', key: string, parent: string, labels: Readonly<Labels>): Snapshot {
    if (key === '') throw new SgError('INVALID_ARGUMENT', 'snapshot key must not be empty');
    const temp = mkdtempSync(join(this.snapshotsDir, 'new-'));
    let renamedTo: string | undefined;
    try {
      // Modes as containerd's (subject to the umask, as there).
      mkdirSync(join(temp, 'fs'), { mode: 0o755 });
      if (kind === 'active') mkdirSync(join(temp, 'work'), { mode: 0o711 });
      return this.store.tx(() => {
        const s = this.store.createSnapshot(kind, key, parent, labels);
        const [first] = s.parentIds;
        if (first !== undefined) {
          // The upper dir starts owned like the parent's root, as in containerd.
          // A remote layer's mount is served by FUSE (in this process, when layers are
          // mounted in-process): a synchronous stat of it could wait on a slow fetch or on
          // the event loop it blocks, so ask the layer instead.
          const dir = fsDir(this.snapshotsDir, first);
          const st = this.remote?.rootOwner(dir) ?? statSync(dir);
          if (st.uid !== process.getuid!() || st.gid !== process.getgid!()) lchownSync(join(temp, 'fs'), st.uid, st.gid);
        }
        renamedTo = join(this.snapshotsDir, s.id);
        renameSync(temp, renamedTo);
        return s;
      });
    } catch (err) {
      // The transaction rolled back, so its id is free again: its directory must go now,
      // synchronously, before another request can be given the same id.
      if (renamedTo) rmSync(renamedTo, { recursive: true, force: true });
      rmSync(temp, { recursive: true, force: true });
      throw err;
    }
  }

  /** The handshake of spec §2.2 step 3; true when the layer is mounted and committed. */
  private async prepareRemote(remote: RemoteLayers, key: string, s: Snapshot, target: string, labels: Readonly<Labels>): Promise<boolean> {
    if (this.store.has(target)) {
      // Another namespace (or a retry) already mounted this layer; a second mount would
      // only be thrown away by the commit below.
      this.log.debug('remote snapshot exists', { 'remote-snapshot-prepared': 'true', key, target });
      return true;
    }
    const mountpoint = fsDir(this.snapshotsDir, s.id);
    try {
      await mountWithBudget(remote, mountpoint, labels, this.budgetMs, this.log);
    } catch (err) {
      const reason = reasonCode(err);
      remoteSnapshotFallbacks.inc({ reason });
      this.log.info('remote snapshot not prepared, containerd pulls the layer', {
        'remote-snapshot-prepared': 'false',
        reason,
        key,
        target,
        ...describeLayer(labels),
        error: err,
      });
      return false;
    }
    try {
      this.store.tx(() => this.store.commitActive(key, target, { size: 0, inodes: 0 }, { ...labels, [LABEL.remote]: REMOTE_LABEL_VALUE }));
    } catch (err) {
      // Already committed by a concurrent Prepare of the same layer: that one serves it.
      await remote.unmount(mountpoint).catch((e: unknown) => this.log.warn('failed to unmount remote snapshot', { mountpoint, error: e }));
      if (isSgError(err, 'ALREADY_EXISTS')) return true;
      throw err;
    }
    this.log.debug('prepared remote snapshot', { 'remote-snapshot-prepared': 'true', key, target, ...describeLayer(labels) });
    return true;
  }

  /** Every remote snapshot in `links` must answer its check, in parallel (spec §2.2). */
  private async checkAvailability(links: readonly ChainLink[]): Promise<void> {
    await Promise.all(
      links
        .filter((l) => Object.hasOwn(l.labels, LABEL.remote))
        .map(async (l) => {
          try {
            if (!this.remote) throw new SgError('UNAVAILABLE', 'remote layers are disabled (ipfs is off)');
            await this.remote.check(fsDir(this.snapshotsDir, l.id), l.labels);
          } catch (err) {
            throw new SgError('UNAVAILABLE', `layer "${l.id}" unavailable`, { id: l.id, reason: reasonCode(err) }, { cause: err });
          }
        }),
    );
  }

  /**
   * Deletes snapshots/<name>: the remote layer (if any) is unmounted first; if anything
   * is still mounted inside, the directory is left alone rather than deleting through a
   * mount. Failures are logged: the record is already gone and Cleanup retries.
   */
  private async removeDir(name: string): Promise<void> {
    const dir = join(this.snapshotsDir, name);
    this.busy.add(name);
    try {
      let mounted = await mountsBelow(dir);
      if (mounted.length > 0 && this.remote) {
        await this.remote.unmount(join(dir, 'fs')).catch((err: unknown) => this.log.debug('remote unmount failed', { dir, error: err }));
        mounted = await mountsBelow(dir);
      }
      for (const mp of mounted) await detach(mp, this.log);
      if ((await mountsBelow(dir)).length > 0) throw new SgError('FAILED_PRECONDITION', 'still mounted', { dir });
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      this.log.warn('failed to remove snapshot directory', { dir, error: err });
    } finally {
      this.busy.delete(name);
    }
  }

  private async detachStaleMounts(): Promise<void> {
    for (const mp of await mountsBelow(this.snapshotsDir)) {
      // Served by a layer server that outlived the previous run: adopted, not stale.
      if (this.remote?.mounted(mp)) continue;
      this.log.info('detaching stale mount', { mountpoint: mp });
      await detach(mp, this.log);
    }
  }

  private async restoreRemoteSnapshots(allowInvalid: boolean): Promise<void> {
    for (const { id, info } of this.store.walk(REMOTE)) {
      const mountpoint = fsDir(this.snapshotsDir, id);
      if (this.remote?.mounted(mountpoint)) {
        this.log.info('remote snapshot still mounted by the layer server', { name: info.name, mountpoint });
        continue;
      }
      await mkdir(join(this.snapshotsDir, id), { recursive: true, mode: 0o700 });
      await mkdir(mountpoint, { recursive: true, mode: 0o755 });
      try {
        if (!this.remote) throw new SgError('UNAVAILABLE', 'remote layers are disabled (ipfs is off)');
        await mountWithBudget(this.remote, mountpoint, info.labels, this.budgetMs, this.log);
        this.log.info('restored remote snapshot', { name: info.name, mountpoint, ...describeLayer(info.labels) });
      } catch (err) {
        if (!allowInvalid) {
          throw new SgError('UNAVAILABLE', `failed to restore remote snapshot "${info.name}"`, { name: info.name, reason: reasonCode(err) }, { cause: err });
        }
        this.log.error(`failed to restore remote snapshot "${info.name}"; remove this snapshot manually`, { name: info.name, mountpoint, error: err });
      }
    }
  }
}
