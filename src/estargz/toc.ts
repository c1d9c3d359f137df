/**
 * TOC JSON → typed, checked entries. Everything a hostile TOC could use to make us read
 * outside the blob, loop, over-allocate or serve bytes that do not belong to a file is
 * rejected here (or in model.ts, for checks that need the whole namespace), each time
 * with HOSTILE_TOC naming the entry.
 *
 * `chunk` entries are folded into the chunk list of the `reg` entry before them; the
 * `reg` entry itself is the first chunk of a non-empty file.
 */
import { SgError } from '../errors.js';
import { cleanName, climbsAboveRoot } from './names.js';

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One piece of a regular file's data and where its gzip member sits in the blob. */
export interface Chunk {
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

/** A non-`chunk` TOC entry, fields as stored except `name` (clean) and `chunks` (folded). */
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
  readonly chunks: readonly Chunk[];
}

export interface Toc {
  readonly version: number;
  /** Raw entry count, `chunk` entries included. */
  readonly numTocEntries: number;
  readonly entries: readonly TocEntry[];
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
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TYPES: ReadonlySet<string> = new Set(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Raw = Record<string, unknown>;

/** Checks a parsed TOC JSON value and returns its entries with chunks folded in. */
export function decodeToc(json: unknown, bounds: TocBounds): Toc {
  if (!isObject(json)) throw hostile('TOC is not a JSON object', {});
  if (json.version !== 1) throw hostile('unsupported TOC version', { version: String(json.version) });
  const raw = json.entries;
  if (!Array.isArray(raw)) throw hostile('TOC has no entries array', {});
  if (raw.length > bounds.maxEntries) {
    throw new SgError('TOO_LARGE', 'TOC has too many entries', { entries: raw.length, maxEntries: bounds.maxEntries });
  }

  const entries: TocEntry[] = [];
  const data: Mutable<Chunk>[] = [];
  // The regular file whose chunks are being collected, and how much of it they cover.
  let file: Mutable<TocEntry> | undefined;
  let covered = 0;

  const closeFile = () => {
    if (!file) return;
    if (covered !== file.size) throw hostile('chunk sizes do not add up to the file size', { entry: file.name, size: file.size, covered });
    const chunks = file.chunks as Mutable<Chunk>[];
    for (const c of chunks) {
      c.digest = c.chunkDigest || (chunks.length === 1 ? file.digest : '');
      if (!c.digest) throw hostile('chunk has no digest to verify it against', { entry: file.name, chunkOffset: c.chunkOffset });
    }
    file = undefined;
  };

  for (let index = 0; index < raw.length; index++) {
    const e: unknown = raw[index];
    if (!isObject(e)) throw hostile('TOC entry is not an object', { index });
    const type = str(e.type, 'type', e, index);
    if (!TYPES.has(type)) throw hostile('unknown entry type', { index, type: type.slice(0, 64) });
    const tocName = str(e.name, 'name', e, index);
    if (tocName.includes('\0')) throw hostile('entry name contains NUL', { index });

    if (type === 'chunk') {
      if (!file) throw hostile('chunk entry without a regular file before it', { index, entry: tocName });
      const c = dataChunk(e, index, file, covered);
      (file.chunks as Chunk[]).push(c);
      data.push(c);
      covered += c.chunkSize;
      continue;
    }
    closeFile();

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
      chunks: [],
    };
    if (entry.linkName.includes('\0')) throw hostile('link name contains NUL', { index, entry: entry.name });
    if ((type === 'symlink' || type === 'hardlink') && entry.linkName === '') throw hostile('link without a target', { index, entry: entry.name });
    entries.push(entry);
    if (type === 'reg' && entry.size > 0) {
      file = entry;
      const first = dataChunk(e, index, entry, 0);
      entry.chunks = [first];
      data.push(first);
      covered = first.chunkSize;
    }
  }
  closeFile();
  placeChunks(data, bounds);
  return { version: 1, numTocEntries: raw.length, entries };
}

/** A chunk from a `reg` (first chunk) or `chunk` entry, checked against its file. */
function dataChunk(e: Raw, index: number, file: TocEntry, covered: number): Mutable<Chunk> {
  const chunkOffset = int(e.chunkOffset, 'chunkOffset', MAX_SIZE, e, index);
  if (chunkOffset !== covered) throw hostile('chunk does not start where the previous one ended', { index, entry: file.name, chunkOffset, expected: covered });
  const rawChunkSize = int(e.chunkSize, 'chunkSize', MAX_SIZE, e, index);
  const chunkSize = rawChunkSize > 0 ? rawChunkSize : file.size - chunkOffset;
  if (chunkSize <= 0 || chunkOffset + chunkSize > file.size) {
    throw hostile('chunk runs past the end of the file', { index, entry: file.name, chunkOffset, chunkSize, size: file.size });
  }
  const offset = int(e.offset, 'offset', MAX_SIZE, e, index);
  if (offset === 0) throw hostile('file data without an offset', { index, entry: file.name, chunkOffset });
  const chunkDigest = digest(e.chunkDigest, 'chunkDigest', e, index);
  return {
    offset,
    innerOffset: int(e.innerOffset, 'innerOffset', MAX_SIZE, e, index),
    nextOffset: 0,
    compressedEnd: 0,
    chunkOffset,
    chunkSize,
    rawChunkSize,
    // One string for the common case of a one-chunk file whose two digests are equal.
    chunkDigest: chunkDigest === file.digest ? file.digest : chunkDigest,
    digest: '',
  };
}

/**
 * Blob placement of every chunk in TOC order: members start at increasing offsets before
 * the TOC; chunks sharing a member (innerOffset > 0) follow each other inside it. Then the
 * compressed range of each chunk, and whether that range could even inflate to the chunk.
 */
function placeChunks(data: Mutable<Chunk>[], bounds: TocBounds): void {
  let prev: Chunk | undefined;
  for (const c of data) {
    const ctx = () => ({ offset: c.offset, innerOffset: c.innerOffset, chunkOffset: c.chunkOffset, previous: prev?.offset ?? -1 });
    if (c.offset >= bounds.tocOffset) throw hostile('chunk offset is not before the TOC', { ...ctx(), tocOffset: bounds.tocOffset });
    if (prev && c.innerOffset === 0 && c.offset <= prev.offset) throw hostile('chunk offsets are not increasing', ctx());
    if (prev && c.innerOffset > 0 && (c.offset !== prev.offset || c.innerOffset < prev.innerOffset + prev.chunkSize)) {
      throw hostile('chunk overlaps the previous chunk in its gzip member', ctx());
    }
    prev = c;
  }
  let next = bounds.blobSize;
  for (let i = data.length - 1; i >= 0; i--) {
    const c = data[i]!;
    c.nextOffset = next;
    c.compressedEnd = Math.min(next, bounds.tocOffset);
    if (c.innerOffset === 0) next = c.offset;
    if (c.innerOffset + c.chunkSize > (c.compressedEnd - c.offset) * MAX_INFLATE_RATIO) {
      throw hostile('chunk is larger than its compressed range can inflate to', {
        offset: c.offset,
        chunkOffset: c.chunkOffset,
        chunkSize: c.chunkSize,
        compressedBytes: c.compressedEnd - c.offset,
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
  let ok = d.length === 71 && d.startsWith('sha256:');
  for (let i = 7; ok && i < 71; i++) {
    const c = d.charCodeAt(i);
    ok = (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
  }
  if (!ok) throw hostile(`field ${key} is not a sha256 digest`, { index, entry: nameOf(e) });
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
