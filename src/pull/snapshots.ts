/**
 * The Snapshots API of containerd (not of our daemon): what the client-side unpacker needs,
 * scoped to a namespace and a lease so that snapshots prepared and committed during a
 * pull are safe from garbage collection until the image references them.
 */
import { unary, type Session } from '../containerd/call.js';
import type { ServiceClient } from '../containerd/proto.js';

export interface SnapshotMount {
  readonly type: string;
  readonly source: string;
  readonly target: string;
  readonly options: readonly string[];
}

export interface SnapshotInfo {
  readonly name: string;
  readonly parent: string;
  readonly kind: string;
  readonly labels: Readonly<Record<string, string>>;
}

export class ContainerdSnapshots {
  /** `client`: containerd's Snapshots service (`Containerd.service('snapshots')`). */
  constructor(
    private readonly client: ServiceClient,
    private readonly session: Session,
    readonly snapshotter: string,
  ) {}

  async prepare(key: string, parent: string, labels: Readonly<Record<string, string>>): Promise<SnapshotMount[]> {
    const req = { snapshotter: this.snapshotter, key, parent, labels };
    const res = await unary<{ mounts: SnapshotMount[] }>(this.client, 'Prepare', req, this.session, 'snapshots.Prepare', { key, snapshotter: this.snapshotter });
    return res.mounts;
  }

  async commit(name: string, key: string, labels: Readonly<Record<string, string>> = {}): Promise<void> {
    const req = { snapshotter: this.snapshotter, name, key, labels };
    await unary(this.client, 'Commit', req, this.session, 'snapshots.Commit', { key, name, snapshotter: this.snapshotter });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const res = await unary<{ info: SnapshotInfo }>(this.client, 'Stat', { snapshotter: this.snapshotter, key }, this.session, 'snapshots.Stat', { key, snapshotter: this.snapshotter });
    return res.info;
  }

  async remove(key: string): Promise<void> {
    await unary(this.client, 'Remove', { snapshotter: this.snapshotter, key }, this.session, 'snapshots.Remove', { key, snapshotter: this.snapshotter });
  }
}
