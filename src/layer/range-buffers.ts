/**
 * Buffers for fetched compressed ranges, reused. A fresh 16 MiB buffer costs 4,096 page
 * faults, each zeroing a page, on the event loop's thread as the bytes arrive: in a cold
 * sequential read that was about a sixth of that thread's time. A range's buffer is only
 * needed until its chunks are decoded, so the chunk reader hands it back then, and the
 * next range of the same size class takes it already mapped. Idle buffers are dropped
 * after a quiet spell, so a daemon that is not reading holds none.
 */

/** Size classes are whole MiB; smaller ranges use a fresh buffer from Node's pool. */
const CLASS = 1 << 20;
/** Idle buffers kept, in bytes. */
const MAX_IDLE = 64 << 20;
/** Idle buffers are released after this long without a take. */
const IDLE_MS = 5000;

export class RangeBuffers {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  /** A buffer of at least `length` bytes (its first `length` are what the caller uses). */
  take(length: number): Buffer {
    if (length < CLASS) return Buffer.allocUnsafe(length);
    const size = Math.ceil(length / CLASS) * CLASS;
    this.touch();
    const list = this.idle.get(size);
    const found = list?.pop();
    if (found) {
      this.idleBytes -= size;
      return found;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer from `take` that nothing reads or writes any more. */
  give(buf: Buffer): void {
    const size = buf.length;
    if (size < CLASS || size % CLASS !== 0 || this.idleBytes + size > MAX_IDLE) return;
    let list = this.idle.get(size);
    if (!list) this.idle.set(size, (list = []));
    list.push(buf);
    this.idleBytes += size;
    this.touch();
  }

  /** Bytes held idle now (for tests). */
  get held(): number {
    return this.idleBytes;
  }

  private touch(): void {
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.idle.clear();
      this.idleBytes = 0;
    }, IDLE_MS);
    this.timer.unref();
  }
}

/** One pool for every layer of the process: ranges are transient, whichever layer asks. */
export const sharedRangeBuffers = new RangeBuffers();
