/**
 * Many short strings (entry names, link targets) in one UTF-8 buffer: a string costs its
 * bytes plus about 1 byte of length, not a heap object each. Only every 32nd string's
 * start is stored; the others are found by adding lengths. JSON can carry lone
 * surrogates, which UTF-8 cannot: such strings are kept aside as they are, so every
 * string reads back exactly.
 */
import { Sparse } from './columns.js';

const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** log2 of how many strings there are per stored start. */
const STRIDE_BITS = 5;
/** A length byte that means: the length is in `long`. */
const LONG = 0xff;

export class StringTable {
  constructor(
    private readonly bytes: Buffer,
    /** Byte length of each string, or LONG. */
    private readonly lengths: Uint8Array,
    /** Start of strings 0, 32, 64… */
    private readonly marks: Uint32Array,
    private readonly long: Sparse<number>,
    private readonly odd: ReadonlyMap<number, string>,
  ) {}

  get(i: number): string {
    let start = this.marks[i >> STRIDE_BITS]!;
    for (let j = (i >> STRIDE_BITS) << STRIDE_BITS; j < i; j++) start += this.length(j);
    const length = this.length(i);
    if (length === 0) return this.odd.get(i) ?? '';
    return this.bytes.toString('utf8', start, start + length);
  }

  private length(i: number): number {
    const length = this.lengths[i]!;
    return length === LONG ? this.long.get(i)! : length;
  }
}

export class StringTableBuilder {
  private readonly strings: string[] = [];
  private readonly odd = new Map<number, string>();

  /** Appends `s` and returns its index. */
  add(s: string): number {
    const i = this.strings.length;
    if (SURROGATE.test(s) && LONE_SURROGATE.test(s)) {
      this.odd.set(i, s);
      this.strings.push('');
    } else this.strings.push(s);
    return i;
  }

  /** The table; the builder is spent. All strings are encoded at once, which is much faster than one by one. */
  finish(): StringTable {
    const all = this.strings.join('');
    const bytes = Buffer.from(all, 'utf8');
    // Same length in bytes as in UTF-16 units: all ASCII, so no string needs measuring.
    const ascii = bytes.length === all.length;
    const lengths = new Uint8Array(this.strings.length);
    const marks = new Uint32Array((this.strings.length >> STRIDE_BITS) + 1);
    const long = new Map<number, number>();
    let at = 0;
    this.strings.forEach((s, i) => {
      if ((i & ((1 << STRIDE_BITS) - 1)) === 0) marks[i >> STRIDE_BITS] = at;
      const length = ascii ? s.length : Buffer.byteLength(s, 'utf8');
      if (length >= LONG) long.set(i, length);
      lengths[i] = Math.min(length, LONG);
      at += length;
    });
    return new StringTable(bytes, lengths, marks, Sparse.of(long), this.odd);
  }
}
