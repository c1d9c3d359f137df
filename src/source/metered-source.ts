import type { BlobSource } from './blob-source.js';

export interface RangeObserver {
  /** One finished range read: seconds taken, bytes returned (0 on error), outcome. */
  (seconds: number, bytes: number, outcome: 'ok' | 'error'): void;
}

/** A BlobSource that reports every range read, for metrics; bytes pass through untouched. */
export function meteredSource(inner: BlobSource, observe: RangeObserver): BlobSource {
  return {
    describe: inner.describe,
    size: (signal) => inner.size(signal),
    async readRange(offset, length, signal, opts) {
      const started = performance.now();
      try {
        const bytes = await inner.readRange(offset, length, signal, opts);
        observe((performance.now() - started) / 1000, bytes.length, 'ok');
        return bytes;
      } catch (err) {
        observe((performance.now() - started) / 1000, 0, 'error');
        throw err;
      }
    },
  };
}
