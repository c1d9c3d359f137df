/**
 * The one table from error codes to gRPC status codes (containerd's errdefs/grpc.go does
 * the same): containerd turns the status back into its error classes, and its metadata
 * layer and unpacker act on AlreadyExists, NotFound and the rest.
 */
import { status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { SgError, type ErrorCode } from '../errors.js';

const STATUS: Record<ErrorCode, status> = {
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  UNAVAILABLE: status.UNAVAILABLE,
  TIMEOUT: status.DEADLINE_EXCEEDED,
  ABORTED: status.CANCELLED,
  NO_SPACE: status.RESOURCE_EXHAUSTED,
  CORRUPT: status.UNKNOWN,
  NOT_ESTARGZ: status.UNKNOWN,
  TOC_DIGEST_MISMATCH: status.UNKNOWN,
  HOSTILE_TOC: status.UNKNOWN,
  TOO_LARGE: status.UNKNOWN,
  CONFIG: status.UNKNOWN,
  IO: status.UNKNOWN,
};

/** Any thrown value as a status error; what is not an SgError is UNKNOWN, as in grpc-go. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const code = err instanceof SgError ? STATUS[err.code] : status.UNKNOWN;
  const details = err instanceof Error ? err.message : String(err);
  return { code, details, metadata: new Metadata() };
}

/** Codes containerd expects in normal operation (an existence probe, a remote layer). */
export const isRoutine = (err: unknown): boolean =>
  err instanceof SgError && (err.code === 'NOT_FOUND' || err.code === 'ALREADY_EXISTS' || err.code === 'FAILED_PRECONDITION');
