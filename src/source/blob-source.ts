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
  readRange(offset: number, length: number, signal?: AbortSignal, opts?: RangeOptions): Promise<Uint8Array>;
}

export interface RangeOptions {
  /** If the source streams: hears of the front of the range as it arrives. */
  readonly onProgress?: RangeProgress;
  /**
   * Where to put the bytes (at least `length` long; the result is a view of it), so that a
   * caller can reuse its buffers instead of taking fresh pages for every range.
   */
  readonly into?: Uint8Array;
}

/**
 * Told while a range read is under way: `bytes[0, filled)` have arrived and will not change.
 * The read may still fail afterwards (and be retried into another buffer), so bytes seen
 * here are for a reader that verifies what it uses, as the chunk reader does with digests.
 * Must not throw.
 */
export type RangeProgress = (bytes: Uint8Array, filled: number) => void;

/** The caller's signal, cut short after `ms` milliseconds. */
export function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, t]) : t;
}
