/**
 * Where a layer's compressed bytes come from. Everything above this interface (eStargz
 * reader, chunk reader, layer fs) is blind to the transport; IPFS is one implementation,
 * a local file another, a trustless gateway or a registry can be added beside them.
 */
export interface BlobSource {
  /** Identity for logs and errors, e.g. `ipfs://bafy…` or a file path. */
  readonly describe: string;
  /** Total blob size in bytes. */
  size(signal?: AbortSignal): Promise<number>;
  /**
   * Exactly `length` bytes starting at `offset`, or a rejection with SgError
   * (a range beyond the end is INVALID_ARGUMENT). Never short, never partial.
   */
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** The caller's signal, cut short after `ms` milliseconds. */
export function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, t]) : t;
}
