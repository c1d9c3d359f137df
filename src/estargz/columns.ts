/** Building blocks of the columnar layer model: growable and narrowed typed arrays, sparse columns. */
import assert from 'node:assert/strict';

export type NumberColumn = Uint8Array | Uint32Array | Int32Array | Float64Array;
/** Small non-negative integers: 2 bytes each when they all fit, else 4. */
export type IndexColumn = Uint16Array | Uint32Array;

/** A copy of `a` with room for `length` elements. */
export function grow<T extends NumberColumn>(a: T, length: number): T {
  const out = new (a.constructor as new (n: number) => T)(length);
  out.set(a);
  return out;
}

/** `a` in 2 bytes an element when every value fits. */
export function narrow(a: Uint32Array): IndexColumn {
  for (const v of a) if (v > 0xffff) return a;
  return Uint16Array.from(a);
}

/** A column that is empty for most keys: the keys that have a value, sorted, and their values. */
export class Sparse<T> {
  private constructor(
    private readonly keys: Uint32Array,
    private readonly values: readonly T[],
  ) {}

  /** From a map filled in key order. */
  static of<T>(map: ReadonlyMap<number, T>): Sparse<T> {
    const keys = Uint32Array.from(map.keys());
    assert(keys.every((k, i) => i === 0 || keys[i - 1]! < k), 'sparse keys out of order');
    return new Sparse(keys, [...map.values()]);
  }

  get(key: number): T | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.values[i];
  }

  has(key: number): boolean {
    return this.find(key) >= 0;
  }

  private find(key: number): number {
    let lo = 0;
    let hi = this.keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const k = this.keys[mid]!;
      if (k === key) return mid;
      if (k < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}
