/**
 * TOC JSON → typed, checked entries. Everything a hostile TOC could use to make us read
 * outside the blob, loop, over-allocate or serve bytes that do not belong to a file is
 * rejected here (or in model.ts, for checks that need the whole namespace), each time
 * with HOSTILE_TOC naming the entry.
 *
 * `chunk` entries are folded into the chunks of the `reg` entry before them; the `reg`
 * entry itself is the first chunk of a non-empty file. All chunks go into one ChunkTable,
 * which outlives the entries: a layer model keeps it, and nothing else of the TOC.
 */
import { SgError } from '../errors.js';
import { ChunkTableBuilder, type ChunkFlags, type ChunkTable } from './chunk-table.js';
import { cleanName, climbsAboveRoot } from './names.js';

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One piece of a regular file's data and where its gzip member sits in the blob. */
export interface Chunk {
  /** Position among all chunks of the TOC, in TOC order (which is blob order). */
  readonly index: number;
  /** Index of the first chunk in the same gzip member (the chunk itself unless it has an innerOffset). */
  readonly member: number;
  /** Blob offset of the gzip member holding the chunk. */
  readonly offset: number;
  /** Decompressed bytes to skip from `offset` before the chunk starts (TOC `innerOffset`, 0 if absent). */
  readonly innerOffset: number;
  /** The Go reader's `NextOffset()`: the next member start in TOC order, or the blob size. */
  readonly nextOffset: number;
  /** End of the compressed range worth fetching: `nextOffset`, but never past the TOC. */
  readonly compressedEnd: number;
  /** Offset of the chunk within the file. */
  readonly chunkOffset: number;
  /** Uncompressed size (resolved; the TOC omits it for a last, short chunk). */
  readonly chunkSize: number;
  /** `chunkSize` as stored, 0 when omitted. */
  readonly rawChunkSize: number;
  /** `chunkDigest` as stored (`""` when omitted). */
  readonly chunkDigest: string;
  /** What the chunk is verified against: `chunkDigest`, or the file digest of a one-chunk file. */
  readonly digest: string;
}

/** A non-`chunk` TOC entry, fields as stored except `name` (clean) and its chunks (folded). */
export interface TocEntry {
  /** Position in the TOC `entries` array. */
  readonly index: number;
  readonly tocName: string;
  readonly name: string;
  readonly type: TocEntryType;
  readonly size: number;
  /** Tar header mode: permission bits plus setuid/setgid/sticky. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** As stored: the writer emits a name only when it changes for that id. */
  readonly userName: string;
  readonly groupName: string;
  readonly modtime: string;
  readonly linkName: string;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  readonly digest: string;
  /** `reg` data: chunks [firstChunk, firstChunk + numChunks) of the TOC's ChunkTable. */
  readonly firstChunk: number;
  readonly numChunks: number;
}

export interface Toc {
  readonly version: number;
  /** Raw entry count, `chunk` entries included. */
  readonly numTocEntries: number;
  readonly entries: readonly TocEntry[];
  readonly chunks: ChunkTable;
}

export interface TocBounds {
  /** Blob size: the Go reader's `nextOffset` of the last chunk. */
  readonly blobSize: number;
  /** Every chunk lies before the TOC. */
  readonly tocOffset: number;
  readonly maxEntries: number;
}

/** Deflate cannot expand one byte into more than 1032 (258-byte matches in 2 bits). */
const MAX_INFLATE_RATIO = 1032;
const MAX_ID = 0xffffffff;
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TYPES: ReadonlySet<string> = new Set(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Raw = Record<string, unknown>;

/** Checks a parsed TOC JSON value and returns its entries with chunks folded in. */
export function decodeToc(json: unknown, bounds: TocBounds): Toc {
  const entries: TocEntry[] = [];
  const { numTocEntries, chunks } = readTocEntries(json, bounds, (e) => entries.push(e));
  return { version: 1, numTocEntries, entries, chunks };
}

/** Takes each checked entry once its chunks are folded in, with the chunks so far. */
export type EntrySink = (e: TocEntry, chunks: ChunkFlags) => void;

/**
 * decodeToc for a consumer that keeps what it needs of each entry (a layer model): no
 * entry is kept here.
 */
export function readTocEntries(json: unknown, bounds: TocBounds, onEntry: EntrySink): Pick<Toc, 'numTocEntries' | 'chunks'> {
  if (!isObject(json)) throw hostile('TOC is not a JSON object', {});
  const raw = json.entries;
  checkTocHead(json.version, Array.isArray(raw) ? raw.length : undefined, bounds);
  const decoder = new TocEntryDecoder(bounds, onEntry);
  for (const e of raw as unknown[]) decoder.add(e);
  return decoder.finish();
}

/** The checks of a TOC object before its entries: version, an entries array (`entries` undefined if none) and its length. */
export function checkTocHead(version: unknown, entries: number | undefined, bounds: TocBounds): void {
  if (version !== 1) throw hostile('unsupported TOC version', { version: String(version) });
  if (entries === undefined) throw hostile('TOC has no entries array', {});
  if (entries > bounds.maxEntries) {
    throw new SgError('TOO_LARGE', 'TOC has too many entries', { entries, maxEntries: bounds.maxEntries });
  }
}

/**
 * The elements of a TOC's `entries`, checked one at a time in order; each entry goes to
 * `onEntry` once the chunk entries after it are folded in. The checks that need every
 * chunk come in finish().
 */
export class TocEntryDecoder {
  private readonly chunks = new ChunkTableBuilder();
  private count = 0;
  /** The last entry, handed on when the next one starts. */
  private last: TocEntry | undefined;
  /** The regular file whose chunks are being collected, and how much of it they cover. */
  private file: Mutable<TocEntry> | undefined;
  private covered = 0;

  constructor(
    private readonly bounds: TocBounds,
    private readonly onEntry: EntrySink,
  ) {}

  add(e: unknown): void {
    const index = this.count++;
    const { chunks } = this;
    if (!isObject(e)) throw hostile('TOC entry is not an object', { index });
    const type = str(e.type, 'type', e, index);
    if (!TYPES.has(type)) throw hostile('unknown entry type', { index, type: type.slice(0, 64) });
    const tocName = str(e.name, 'name', e, index);
    if (tocName.includes('\0')) throw hostile('entry name contains NUL', { index });

    if (type === 'chunk') {
      if (!this.file) throw hostile('chunk entry without a regular file before it', { index, entry: tocName });
      this.covered += addChunk(chunks, e, index, this.file, this.covered);
      return;
    }
    this.handOn();

    if (climbsAboveRoot(tocName)) throw hostile('entry name escapes the root', { index, entry: tocName });
    const entry: Mutable<TocEntry> = {
      index,
      tocName,
      name: cleanName(tocName),
      type: type as TocEntryType,
      size: int(e.size, 'size', MAX_SIZE, e, index),
      mode: int(e.mode, 'mode', MAX_ID, e, index),
      uid: int(e.uid, 'uid', MAX_ID, e, index),
      gid: int(e.gid, 'gid', MAX_ID, e, index),
      userName: str(e.userName, 'userName', e, index),
      groupName: str(e.groupName, 'groupName', e, index),
      modtime: str(e.modtime, 'modtime', e, index),
      linkName: str(e.linkName, 'linkName', e, index),
      devMajor: int(e.devMajor, 'devMajor', MAX_ID, e, index),
      devMinor: int(e.devMinor, 'devMinor', MAX_ID, e, index),
      xattrs: xattrs(e.xattrs, e, index),
      digest: digest(e.digest, 'digest', e, index),
      firstChunk: chunks.count,
      numChunks: 0,
    };
    if (entry.linkName.includes('\0')) throw hostile('link name contains NUL', { index, entry: entry.name });
    if ((type === 'symlink' || type === 'hardlink') && entry.linkName === '') throw hostile('link without a target', { index, entry: entry.name });
    this.last = entry;
    if (type === 'reg' && entry.size > 0) {
      this.file = entry;
      this.covered = addChunk(chunks, e, index, entry, 0);
    }
  }

  finish(): Pick<Toc, 'numTocEntries' | 'chunks'> {
    this.handOn();
    const table = this.chunks.finish(this.bounds);
    placeChunks(table, this.bounds);
    return { numTocEntries: this.count, chunks: table };
  }

  private handOn(): void {
    this.closeFile();
    if (this.last) this.onEntry(this.last, this.chunks);
    this.last = undefined;
  }

  private closeFile(): void {
    const { file, chunks } = this;
    if (!file) return;
    if (this.covered !== file.size) throw hostile('chunk sizes do not add up to the file size', { entry: file.name, size: file.size, covered: this.covered });
    file.numChunks = chunks.count - file.firstChunk;
    for (let i = file.firstChunk, chunkOffset = 0; i < chunks.count; chunkOffset += chunks.size(i++)) {
      if (chunks.hasDigest(i)) continue;
      if (file.numChunks > 1 || file.digest === '') throw hostile('chunk has no digest to verify it against', { entry: file.name, chunkOffset });
      chunks.useFileDigest(i, file.digest);
    }
    this.file = undefined;
  }
}

/** Adds a chunk from a `reg` (first chunk) or `chunk` entry, checked against its file; returns its size. */
function addChunk(chunks: ChunkTableBuilder, e: Raw, index: number, file: TocEntry, covered: number): number {
  const chunkOffset = int(e.chunkOffset, 'chunkOffset', MAX_SIZE, e, index);
  if (chunkOffset !== covered) throw hostile('chunk does not start where the previous one ended', { index, entry: file.name, chunkOffset, expected: covered });
  const rawChunkSize = int(e.chunkSize, 'chunkSize', MAX_SIZE, e, index);
  const chunkSize = rawChunkSize > 0 ? rawChunkSize : file.size - chunkOffset;
  if (chunkSize <= 0 || chunkOffset + chunkSize > file.size) {
    throw hostile('chunk runs past the end of the file', { index, entry: file.name, chunkOffset, chunkSize, size: file.size });
  }
  const offset = int(e.offset, 'offset', MAX_SIZE, e, index);
  if (offset === 0) throw hostile('file data without an offset', { index, entry: file.name, chunkOffset });
  // A one-chunk file's chunkDigest is usually its digest, checked already.
  const chunkDigest = e.chunkDigest === file.digest && file.digest !== '' ? file.digest : digest(e.chunkDigest, 'chunkDigest', e, index);
  chunks.add({
    offset,
    innerOffset: int(e.innerOffset, 'innerOffset', MAX_SIZE, e, index),
    chunkSize,
    rawSizeOmitted: rawChunkSize === 0,
    chunkDigest,
    fileStart: chunkOffset === 0,
    fileDigest: chunkDigest !== '' && chunkDigest === file.digest,
  });
  return chunkSize;
}

/**
 * Blob placement of every chunk in TOC order: members start at increasing offsets before
 * the TOC; chunks sharing a member (innerOffset > 0) follow each other inside it. Then the
 * compressed range of each chunk, and whether that range could even inflate to the chunk.
 */
function placeChunks(t: ChunkTable, bounds: TocBounds): void {
  for (let i = 0; i < t.count; i++) {
    const offset = t.offset(i);
    const innerOffset = t.innerOffset(i);
    const ctx = () => ({ offset, innerOffset, chunkOffset: t.chunk(i).chunkOffset, previous: i > 0 ? t.offset(i - 1) : -1 });
    if (offset >= bounds.tocOffset) throw hostile('chunk offset is not before the TOC', { ...ctx(), tocOffset: bounds.tocOffset });
    if (i === 0) continue;
    if (innerOffset === 0 && offset <= t.offset(i - 1)) throw hostile('chunk offsets are not increasing', ctx());
    if (innerOffset > 0 && (offset !== t.offset(i - 1) || innerOffset < t.innerOffset(i - 1) + t.size(i - 1))) {
      throw hostile('chunk overlaps the previous chunk in its gzip member', ctx());
    }
  }
  let next = bounds.blobSize;
  for (let i = t.count - 1; i >= 0; i--) {
    const offset = t.offset(i);
    const innerOffset = t.innerOffset(i);
    const chunkSize = t.size(i);
    const compressedEnd = Math.min(next, bounds.tocOffset);
    if (innerOffset === 0) next = offset;
    if (innerOffset + chunkSize > (compressedEnd - offset) * MAX_INFLATE_RATIO) {
      throw hostile('chunk is larger than its compressed range can inflate to', {
        offset,
        chunkOffset: t.chunk(i).chunkOffset,
        chunkSize,
        compressedBytes: compressedEnd - offset,
      });
    }
  }
}

// Field checks. Values are read with plain property access by the caller (fast on the
// parsed JSON objects); absent and `null` mean the zero value, as in Go.

const nameOf = (e: Raw): string => (typeof e.name === 'string' ? e.name : '');

function str(v: unknown, key: string, e: Raw, index: number): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  throw hostile(`field ${key} is not a string`, { index, entry: nameOf(e) });
}

function int(v: unknown, key: string, max: number, e: Raw, index: number): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw hostile(`field ${key} is not an integer in [0, ${max}]`, { index, entry: nameOf(e), value: String(v).slice(0, 64) });
  }
  return v;
}

/** `sha256:` + 64 lowercase hex digits, or `""`. */
function digest(v: unknown, key: string, e: Raw, index: number): string {
  const d = str(v, key, e, index);
  if (d === '') return d;
  if (!DIGEST.test(d)) throw hostile(`field ${key} is not a sha256 digest`, { index, entry: nameOf(e) });
  return d;
}

function xattrs(v: unknown, e: Raw, index: number): ReadonlyMap<string, Buffer> {
  if (v === undefined || v === null) return NO_XATTRS;
  if (!isObject(v)) throw hostile('field xattrs is not an object', { index, entry: nameOf(e) });
  const keys = Object.keys(v);
  if (keys.length === 0) return NO_XATTRS;
  const out = new Map<string, Buffer>();
  for (const k of keys) {
    const b64 = v[k];
    if (b64 === null) {
      out.set(k, Buffer.alloc(0));
      continue;
    }
    if (typeof b64 !== 'string' || !BASE64.test(b64)) throw hostile('xattr value is not base64', { index, entry: nameOf(e), xattr: k });
    out.set(k, Buffer.from(b64, 'base64'));
  }
  return out;
}

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hostile(message: string, context: Record<string, string | number>): SgError {
  return new SgError('HOSTILE_TOC', message, context);
}
