import { SgError, type ErrorCode } from '../errors.js';

/** The one table from our error codes to the (negative) errno a FUSE op returns. */
const ERRNO: Record<ErrorCode, number> = {
  NOT_FOUND: -2, // ENOENT
  ALREADY_EXISTS: -17, // EEXIST
  FAILED_PRECONDITION: -5, // EIO
  INVALID_ARGUMENT: -22, // EINVAL
  UNAVAILABLE: -5, // EIO
  TIMEOUT: -5, // EIO
  ABORTED: -4, // EINTR
  CORRUPT: -5, // EIO
  NOT_ESTARGZ: -5,
  TOC_DIGEST_MISMATCH: -5,
  HOSTILE_TOC: -5,
  TOO_LARGE: -27, // EFBIG
  CONFIG: -5,
  NO_SPACE: -28, // ENOSPC
  IO: -5,
};

export const ENOENT = -2;
export const EIO = -5;
export const EBADF = -9;
export const EINVAL = -22;
export const EROFS = -30;
export const ERANGE = -34;
export const ENOSYS = -38;
export const ENODATA = -61;
export const EPROTO = -71;

/** A negative errno the kernel accepts (1..511); anything unknown is EIO. */
export function toErrno(err: unknown): number {
  if (err instanceof SgError) return ERRNO[err.code];
  const errno = (err as { errno?: unknown }).errno;
  return typeof errno === 'number' && errno !== 0 && Math.abs(errno) < 512 ? -Math.abs(errno) : EIO;
}
