/** File range → the chunks that cover it. Pure, so the read path's arithmetic is tested alone. */
export interface Slice {
  /** Index into the file's chunk list. */
  readonly chunk: number;
  /** Bytes to skip at the start of that chunk. */
  readonly skip: number;
  /** Bytes to take from it. */
  readonly take: number;
}

/**
 * `starts`: each chunk's offset in the file, sorted, starts[0] === 0; `size`: file size.
 * The range is clamped to the file; an empty or past-the-end range gives no slices.
 */
export function planRead(starts: readonly number[], size: number, offset: number, length: number): Slice[] {
  const out: Slice[] = [];
  const end = Math.min(size, offset + length);
  if (starts.length === 0 || offset >= end) return out;
  for (let i = chunkAt(starts, offset), pos = offset; pos < end; i++) {
    const stop = Math.min(end, starts[i + 1] ?? end);
    out.push({ chunk: i, skip: pos - starts[i]!, take: stop - pos });
    pos = stop;
  }
  return out;
}

/** Index of the chunk holding `offset` (binary search). */
export function chunkAt(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
