/**
 * containerd's Diff service: Apply extracts a layer blob from the content store onto the
 * mounts of an active snapshot (decompressing as needed) and answers the descriptor of
 * what it applied, whose digest is the layer's diffID. The client side of the unpacker's
 * `applier.Apply`. Loaded like the other services (proto/…/diff/v1/diff.proto).
 */
import * as grpc from '@grpc/grpc-js';
import { unary, type Session } from './call.js';
import { loadApiProtos, type GenericClient } from './proto.js';

const DIFF_SERVICE = 'containerd.services.diff.v1.Diff';

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

let service: grpc.ServiceDefinition | undefined;

function definition(): grpc.ServiceDefinition {
  service ??= loadApiProtos(['diff/v1/diff.proto'])[DIFF_SERVICE] as grpc.ServiceDefinition;
  return service;
}

export class DiffClient {
  private readonly client: GenericClient;

  /** `address`: containerd's socket path or any gRPC target. */
  constructor(
    address: string,
    private readonly session: Session,
  ) {
    const Ctor = grpc.makeGenericClientConstructor(definition(), 'Diff');
    this.client = new Ctor(address.startsWith('/') ? `unix:${address}` : address, grpc.credentials.createInsecure()) as unknown as GenericClient;
  }

  /** Extracts the blob `desc` (already in the content store) onto `mounts`; resolves to the applied (uncompressed) descriptor. */
  async apply(desc: DiffDescriptor, mounts: readonly DiffMount[]): Promise<DiffDescriptor> {
    const req = {
      diff: { media_type: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { ...desc.annotations } },
      mounts: mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] })),
      payloads: {},
    };
    const res = await unaryLong<{ applied: { media_type: string; digest: string; size: number } }>(this.client, req, this.session, desc.digest);
    return { mediaType: res.applied.media_type, digest: res.applied.digest, size: res.applied.size };
  }

  close(): void {
    this.client.close();
  }
}

/** `unary` with a deadline fit for extracting a large layer. */
function unaryLong<T>(client: GenericClient, req: object, s: Session, digest: string): Promise<T> {
  const withDeadline = new Proxy(client, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== 'Apply' || typeof v !== 'function') return v;
      return (r: object, md: grpc.Metadata, _opts: grpc.CallOptions, cb: Function) =>
        (v as Function).call(target, r, md, { deadline: Date.now() + APPLY_TIMEOUT_MS }, cb);
    },
  });
  return unary<T>(withDeadline, 'Apply', req, s, 'diff.Apply', { digest });
}
