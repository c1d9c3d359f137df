/**
 * containerd leases: content written under a lease (gRPC metadata `containerd-lease`) is
 * safe from garbage collection until the lease is deleted, so a half-built image is never
 * collected while blobs are being written and not yet referenced by an image record.
 */
import { randomBytes } from 'node:crypto';
import { unary, type Session } from './call.js';
import type { ServiceClient } from './proto.js';

/** containerd's GC drops an expired lease (and what only it held) on its own. */
export const EXPIRE_LABEL = 'containerd.io/gc.expire';

export class LeaseManager {
  constructor(
    private readonly client: ServiceClient,
    private readonly session: Session,
  ) {}

  /** A new lease that expires after `expireAfterMs` if never deleted (e.g. on a crash). */
  async create(prefix: string, expireAfterMs: number): Promise<string> {
    const id = `${prefix}-${randomBytes(6).toString('hex')}`;
    const labels = { [EXPIRE_LABEL]: new Date(Date.now() + expireAfterMs).toISOString() };
    await unary(this.client, 'Create', { id, labels }, this.session, 'leases.Create', { lease: id });
    return id;
  }

  async delete(id: string): Promise<void> {
    await unary(this.client, 'Delete', { id, sync: false }, this.session, 'leases.Delete', { lease: id });
  }

  async list(): Promise<string[]> {
    const res = await unary<{ leases: { id: string }[] }>(this.client, 'List', { filters: [] }, this.session, 'leases.List');
    return res.leases.map((l) => l.id);
  }
}
