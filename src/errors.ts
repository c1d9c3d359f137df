/**
 * One error class for the whole daemon. `code` is stable and typed so that the FUSE
 * adapter maps it to an errno and the gRPC service to a status code, each in one table.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'CORRUPT'
  | 'NOT_ESTARGZ'
  | 'TOC_DIGEST_MISMATCH'
  | 'HOSTILE_TOC'
  | 'TOO_LARGE'
  | 'CONFIG'
  | 'NO_SPACE'
  | 'IO';

export type ErrorContext = Readonly<Record<string, string | number | boolean | undefined>>;

export class SgError extends Error {
  override readonly name = 'SgError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: ErrorContext = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** Message plus context, for one-line CLI output and logs. */
  describe(): string {
    const ctx = Object.entries(this.context)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ');
    return ctx ? `${this.message} (${ctx})` : this.message;
  }
}

export const isSgError = (err: unknown, code?: ErrorCode): err is SgError =>
  err instanceof SgError && (code === undefined || err.code === code);

/** A readable message from anything thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof SgError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
