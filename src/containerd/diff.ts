/**
 * containerd's Diff service: Apply extracts a layer blob from the content store onto the
 * mounts of an active snapshot (decompressing as needed) and answers the descriptor of
 * what it applied, whose digest is the layer's diffID. The client side of the unpacker's
 * `applier.Apply`. Loaded like the other services (proto/…/diff/v1/diff.proto).
 */
import { unary, type Session } from './call.js';
import type { ServiceClient } from './proto.js';

export interface DiffDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface DiffMount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

/** Applying a 100 MiB layer takes seconds; a stuck containerd still fails in bounded time. */
const APPLY_TIMEOUT_MS = 30 * 60_000;

export class DiffClient {
  /** `client`: containerd's Diff service (`Containerd.service('diff')`). */
  constructor(
    private readonly client: ServiceClient,
    private readonly session: Session,
  ) {}

  /** Extracts the blob `desc` (already in the content store) onto `mounts`; resolves to the applied (uncompressed) descriptor. */
  async apply(desc: DiffDescriptor, mounts: readonly DiffMount[]): Promise<DiffDescriptor> {
    const req = {
      diff: { media_type: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { ...desc.annotations } },
      mounts: mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] })),
      payloads: {},
    };
    const res = await unary<{ applied: { media_type: string; digest: string; size: number } }>(this.client, 'Apply', req, this.session, 'diff.Apply', { digest: desc.digest }, APPLY_TIMEOUT_MS);
    return { mediaType: res.applied.media_type, digest: res.applied.digest, size: res.applied.size };
  }
}
