/**
 * What every call to containerd shares: the metadata that scopes it (namespace, lease),
 * a deadline, and the one translation of gRPC status codes into SgError codes (the client
 * side of containerd's errdefs/grpc.go).
 */
import * as grpc from '@grpc/grpc-js';
import { SgError, type ErrorCode, type ErrorContext } from '../errors.js';
import type { GenericClient } from './proto.js';

/** Where calls go and what they are scoped to. */
export interface Session {
  readonly address: string;
  readonly namespace: string;
  /** Resources written while set are held by this lease until it is deleted or expires. */
  readonly lease?: string;
}

/** Unary calls move little data; a longer wait means containerd is stuck. */
export const UNARY_TIMEOUT_MS = 60_000;

const CODES: Partial<Record<grpc.status, ErrorCode>> = {
  [grpc.status.NOT_FOUND]: 'NOT_FOUND',
  [grpc.status.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [grpc.status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [grpc.status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [grpc.status.OUT_OF_RANGE]: 'INVALID_ARGUMENT',
  [grpc.status.UNAVAILABLE]: 'UNAVAILABLE',
  [grpc.status.DEADLINE_EXCEEDED]: 'TIMEOUT',
  [grpc.status.CANCELLED]: 'ABORTED',
  [grpc.status.ABORTED]: 'ABORTED',
  [grpc.status.DATA_LOSS]: 'CORRUPT',
};

export function metadata(s: Session): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('containerd-namespace', s.namespace);
  if (s.lease !== undefined) md.set('containerd-lease', s.lease);
  return md;
}

const isServiceError = (err: unknown): err is grpc.ServiceError =>
  err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;

/** `call` names the method (`content.Info`); `ctx` adds what it was about (digest, ref, name). */
export function toSgError(err: unknown, call: string, s: Session, ctx: ErrorContext = {}): SgError {
  if (err instanceof SgError) return err;
  const context = { ...ctx, call, namespace: s.namespace, address: s.address };
  if (!isServiceError(err)) return new SgError('IO', `containerd ${call}: ${err instanceof Error ? err.message : String(err)}`, context, { cause: err });
  const code = CODES[err.code as grpc.status] ?? 'IO';
  const details = (err.details || grpc.status[err.code]).replace(/\s*Resolution note:\s*$/, '');
  // Only grpc-js's own connection failure means "cannot reach": containerd also answers UNAVAILABLE, e.g. for a locked ingest ref.
  const message = /^No connection established/.test(details) ? `cannot reach containerd at ${s.address}: ${details}` : `containerd ${call}: ${details}`;
  return new SgError(code, message, { ...context, grpcCode: grpc.status[err.code] }, { cause: err });
}

type UnaryFn = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

export function unary<T>(client: GenericClient, method: string, req: object, s: Session, call: string, ctx: ErrorContext = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    (client[method] as UnaryFn).call(client, req, metadata(s), { deadline: Date.now() + UNARY_TIMEOUT_MS }, (err, res) =>
      err ? reject(toSgError(err, call, s, ctx)) : resolve(res as T),
    );
  });
}
