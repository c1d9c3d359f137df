/**
 * Every chunk of a layer in TOC order (which is blob order), as columns: a chunk costs its
 * 32-byte digest plus 9 bytes (13 in blobs over 4 GiB), not an object with two hex strings.
 * A file's chunks are consecutive; a chunk's place in its file and the end of its
 * compressed range are worked out when asked, from its neighbours.
 */
import { grow, Sparse } from './columns.js';
import type { Chunk } from './toc.js';

const FILE_START = 1;
const RAW_SIZE_OMITTED = 2;
const CHUNK_DIGEST_OMITTED = 4;
/** The chunk's digest is also its file's digest. */
const FILE_DIGEST = 8;
const DIGEST_BYTES = 32;
const DIGEST_PREFIX = 'sha256:';
const INITIAL_ROWS = 1024;

/** What is known of a chunk before the table is finished. */
export interface ChunkFlags {
  /** The chunk's digest is also the digest of the file it starts. */
  isFileDigest(i: number): boolean;
}

export interface NewChunk {
  readonly offset: number;
  readonly innerOffset: number;
  /** Resolved size (> 0). */
  readonly chunkSize: number;
  /** `chunkSize` was omitted in the TOC. */
  readonly rawSizeOmitted: boolean;
  /** `sha256:<hex>` as stored, or `""` (then the file's digest is set with useFileDigest). */
  readonly chunkDigest: string;
  /** First chunk of its file. */
  readonly fileStart: boolean;
  /** chunkDigest equals the file's digest. */
  readonly fileDigest: boolean;
}

export class ChunkTable implements ChunkFlags {
  constructor(
    readonly count: number,
    /** 4 bytes a chunk when the blob is under 4 GiB. */
    private readonly offsets: Uint32Array | Float64Array,
    /** 0: the size is in bigSizes (sizes are never 0). */
    private readonly sizes: Uint32Array,
    private readonly bigSizes: Sparse<number>,
    private readonly innerOffsets: Sparse<number>,
    private readonly flags: Uint8Array,
    private readonly digests: Buffer,
    private readonly blobSize: number,
    private readonly tocOffset: number,
  ) {}

  /** The chunks of the file whose first chunk is `first`, in file order. */
  fileChunks(first: number): Chunk[] {
    const out: Chunk[] = [];
    const end = this.fileEnd(first);
    for (let i = first, chunkOffset = 0; i < end; chunkOffset += this.size(i++)) out.push(new ChunkView(this, i, chunkOffset));
    return out;
  }

  /** Size of the file whose first chunk is `first`. */
  fileSize(first: number): number {
    let size = 0;
    const end = this.fileEnd(first);
    for (let i = first; i < end; i++) size += this.size(i);
    return size;
  }

  /** Chunk i; its offset in the file is found walking back to the file's first chunk. */
  chunk(i: number): Chunk {
    let chunkOffset = 0;
    for (let j = i; !(this.flags[j]! & FILE_START); j--) chunkOffset += this.size(j - 1);
    return new ChunkView(this, i, chunkOffset);
  }

  offset(i: number): number {
    return this.offsets[i]!;
  }

  innerOffset(i: number): number {
    return this.innerOffsets.get(i) ?? 0;
  }

  size(i: number): number {
    return this.sizes[i] || this.bigSizes.get(i)!;
  }

  rawSize(i: number): number {
    return this.flags[i]! & RAW_SIZE_OMITTED ? 0 : this.size(i);
  }

  digest(i: number): string {
    return DIGEST_PREFIX + this.digests.toString('hex', i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
  }

  chunkDigest(i: number): string {
    return this.flags[i]! & CHUNK_DIGEST_OMITTED ? '' : this.digest(i);
  }

  isFileDigest(i: number): boolean {
    return (this.flags[i]! & FILE_DIGEST) !== 0;
  }

  /** The Go reader's `NextOffset()`: the next member start in TOC order, or the blob size. */
  nextOffset(i: number): number {
    let j = i + 1;
    while (j < this.count && this.innerOffsets.has(j)) j++;
    return j < this.count ? this.offsets[j]! : this.blobSize;
  }

  compressedEnd(i: number): number {
    return Math.min(this.nextOffset(i), this.tocOffset);
  }

  /** First chunk of the gzip member holding chunk i. */
  member(i: number): number {
    let j = i;
    while (j > 0 && this.innerOffsets.has(j)) j--;
    return j;
  }

  /** One past the last chunk of the file whose first chunk is `first`. */
  private fileEnd(first: number): number {
    let end = first + 1;
    while (end < this.count && !(this.flags[end]! & FILE_START)) end++;
    return end;
  }
}

class ChunkView implements Chunk {
  private hex: string | undefined;

  constructor(
    private readonly table: ChunkTable,
    readonly index: number,
    readonly chunkOffset: number,
  ) {}

  get member(): number {
    return this.table.member(this.index);
  }
  get offset(): number {
    return this.table.offset(this.index);
  }
  get innerOffset(): number {
    return this.table.innerOffset(this.index);
  }
  get nextOffset(): number {
    return this.table.nextOffset(this.index);
  }
  get compressedEnd(): number {
    return this.table.compressedEnd(this.index);
  }
  get chunkSize(): number {
    return this.table.size(this.index);
  }
  get rawChunkSize(): number {
    return this.table.rawSize(this.index);
  }
  get chunkDigest(): string {
    return this.table.chunkDigest(this.index);
  }
  get digest(): string {
    return (this.hex ??= this.table.digest(this.index));
  }
}

export class ChunkTableBuilder implements ChunkFlags {
  private n = 0;
  private offsets = new Float64Array(INITIAL_ROWS);
  private maxOffset = 0;
  private sizes = new Uint32Array(INITIAL_ROWS);
  private flags = new Uint8Array(INITIAL_ROWS);
  private digests = Buffer.alloc(INITIAL_ROWS * DIGEST_BYTES);
  private readonly bigSizes = new Map<number, number>();
  private readonly innerOffsets = new Map<number, number>();

  get count(): number {
    return this.n;
  }

  add(c: NewChunk): void {
    const i = this.n++;
    if (i === this.offsets.length) this.enlarge();
    this.offsets[i] = c.offset;
    this.maxOffset = Math.max(this.maxOffset, c.offset);
    if (c.chunkSize <= 0xffffffff) this.sizes[i] = c.chunkSize;
    else this.bigSizes.set(i, c.chunkSize);
    if (c.innerOffset > 0) this.innerOffsets.set(i, c.innerOffset);
    this.flags[i] = (c.fileStart ? FILE_START : 0) | (c.rawSizeOmitted ? RAW_SIZE_OMITTED : 0) | (c.fileDigest ? FILE_DIGEST : 0);
    if (c.chunkDigest === '') this.flags[i]! |= CHUNK_DIGEST_OMITTED;
    else this.writeDigest(i, c.chunkDigest);
  }

  size(i: number): number {
    return this.sizes[i] || this.bigSizes.get(i)!;
  }

  isFileDigest(i: number): boolean {
    return (this.flags[i]! & FILE_DIGEST) !== 0;
  }

  hasDigest(i: number): boolean {
    return !(this.flags[i]! & CHUNK_DIGEST_OMITTED);
  }

  /** Verifies chunk i (stored without a chunkDigest) against its file's digest. */
  useFileDigest(i: number, fileDigest: string): void {
    this.writeDigest(i, fileDigest);
    this.flags[i]! |= FILE_DIGEST;
  }

  /** The table, trimmed to size; the builder is spent. */
  finish(bounds: { readonly blobSize: number; readonly tocOffset: number }): ChunkTable {
    const n = this.n;
    const offsets = this.offsets.subarray(0, n);
    return new ChunkTable(
      n,
      this.maxOffset <= 0xffffffff ? Uint32Array.from(offsets) : offsets.slice(),
      this.sizes.slice(0, n),
      Sparse.of(this.bigSizes),
      Sparse.of(this.innerOffsets),
      this.flags.slice(0, n),
      Buffer.from(this.digests.subarray(0, n * DIGEST_BYTES)),
      bounds.blobSize,
      bounds.tocOffset,
    );
  }

  private writeDigest(i: number, digest: string): void {
    this.digests.write(digest.slice(DIGEST_PREFIX.length), i * DIGEST_BYTES, DIGEST_BYTES, 'hex');
  }

  private enlarge(): void {
    const rows = this.offsets.length * 2;
    this.offsets = grow(this.offsets, rows);
    this.sizes = grow(this.sizes, rows);
    this.flags = grow(this.flags, rows);
    const digests = Buffer.alloc(rows * DIGEST_BYTES);
    this.digests.copy(digests);
    this.digests = digests;
  }
}
