/**
 * What every call to containerd shares: the metadata that scopes it (namespace, lease),
 * a deadline, and the one translation of gRPC status codes into SgError codes (the client
 * side of containerd's errdefs/grpc.go).
 */
import { SgError, type ErrorCode, type ErrorContext } from '../errors.js';
import { GrpcError, Status, statusName, type Metadata } from './grpc-h2.js';
import type { ServiceClient } from './proto.js';

/** Where calls go and what they are scoped to. */
export interface Session {
  readonly address: string;
  readonly namespace: string;
  /** Resources written while set are held by this lease until it is deleted or expires. */
  readonly lease?: string;
}

/** Unary calls move little data; a longer wait means containerd is stuck. */
export const UNARY_TIMEOUT_MS = 60_000;

const CODES: Partial<Record<number, ErrorCode>> = {
  [Status.NOT_FOUND]: 'NOT_FOUND',
  [Status.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [Status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [Status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [Status.OUT_OF_RANGE]: 'INVALID_ARGUMENT',
  [Status.UNAVAILABLE]: 'UNAVAILABLE',
  [Status.DEADLINE_EXCEEDED]: 'TIMEOUT',
  [Status.CANCELLED]: 'ABORTED',
  [Status.ABORTED]: 'ABORTED',
  [Status.DATA_LOSS]: 'CORRUPT',
};

export function metadata(s: Session): Metadata {
  return s.lease === undefined ? { 'containerd-namespace': s.namespace } : { 'containerd-namespace': s.namespace, 'containerd-lease': s.lease };
}

/** `call` names the method (`content.Info`); `ctx` adds what it was about (digest, ref, name). */
export function toSgError(err: unknown, call: string, s: Session, ctx: ErrorContext = {}): SgError {
  if (err instanceof SgError) return err;
  const context = { ...ctx, call, namespace: s.namespace, address: s.address };
  if (!(err instanceof GrpcError)) return new SgError('IO', `containerd ${call}: ${err instanceof Error ? err.message : String(err)}`, context, { cause: err });
  const code = CODES[err.code] ?? 'IO';
  const details = err.details || statusName(err.code);
  // Only the transport's own connection failure means "cannot reach": containerd also answers UNAVAILABLE, e.g. for a locked ingest ref.
  const message = /^No connection established/.test(details) ? `cannot reach containerd at ${s.address}: ${details}` : `containerd ${call}: ${details}`;
  return new SgError(code, message, { ...context, grpcCode: statusName(err.code) }, { cause: err });
}

export async function unary<T>(
  client: ServiceClient,
  method: string,
  req: object,
  s: Session,
  call: string,
  ctx: ErrorContext = {},
  timeoutMs = UNARY_TIMEOUT_MS,
): Promise<T> {
  const m = client.methods[method];
  if (!m) throw new SgError('INVALID_ARGUMENT', `containerd ${call}: no such method`, { method });
  try {
    const reply = await client.channel.unary(m.path, m.requestSerialize(req), metadata(s), timeoutMs);
    return m.responseDeserialize(reply) as T;
  } catch (err) {
    throw toSgError(err, call, s, ctx);
  }
}
