/**
 * The FUSE kernel protocol (linux/fuse.h, 7.31+): the read-only subset we speak, as
 * opcodes, flags and little-endian struct codecs. Pure: no I/O, no filesystem logic.
 */
import type { Attr, StatFs } from '../layer/fs-api.js';

export const ROOT_ID = 1;
/** Our protocol version; the kernel speaks the older of its own and ours (7.28 brought max_pages). */
export const KERNEL_MAJOR = 7;
export const KERNEL_MINOR = 31;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  RENAME2: 45,
  COPY_FILE_RANGE: 47,
  TMPFILE: 51,
} as const;

/** Opcode → name, for logs. */
export const OP_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Op).map(([name, code]) => [code, name.toLowerCase()]));

/** Ops that would change the filesystem: answered EROFS, never ENOSYS (which the kernel would remember). */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK, Op.WRITE,
  Op.SETXATTR, Op.REMOVEXATTR, Op.CREATE, Op.FALLOCATE, Op.RENAME2, Op.COPY_FILE_RANGE, Op.TMPFILE,
]);

/** fuse_init_in/out flags. */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  /** The flags go on in flags2 (the upper 32 bits). */
  INIT_EXT: 1 << 30,
} as const;

/** Bits of flags2 (bit n is the kernel's flag 1 << (32 + n)). */
export const InitFlag2 = {
  PASSTHROUGH: 1 << 5,
} as const;

export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_NOFLUSH = 1 << 5;
/** Reads go to the backing file named by the reply's backing id. */
export const FOPEN_PASSTHROUGH = 1 << 7;

/** The kernel refuses a read buffer smaller than this plus max_write. */
export const MIN_READ_BUFFER = 8192;
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
const INIT_OUT_SIZE = 64;
const DIRENT_HEADER_SIZE = 24;

const U32 = 4294967296;

/** A u64 that fits a JS number (node ids, offsets, uniques all stay far below 2^53). */
export function readU64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * U32;
}

/** A 64-bit integer, signed or not (times before 1970 are negative). */
function writeI64(b: Buffer, off: number, n: number): void {
  const hi = Math.floor(n / U32);
  b.writeUInt32LE(n - hi * U32, off);
  b.writeUInt32LE(hi >>> 0, off + 4);
}

export interface RequestHeader {
  readonly len: number;
  readonly opcode: number;
  readonly unique: number;
  readonly nodeid: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

export function parseHeader(b: Buffer): RequestHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: readU64(b, 8),
    nodeid: readU64(b, 16),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

/** fuse_out_header; `error` is 0 or a negative errno. */
export function outHeader(len: number, error: number, unique: number): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  writeI64(b, 8, unique);
  return b;
}

/** A NUL-terminated name at `off`. */
export function cString(b: Buffer, off = 0): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 ? b.length : end);
}

export interface InitIn {
  readonly major: number;
  readonly minor: number;
  readonly maxReadahead: number;
  readonly flags: number;
  /** Zero unless the kernel set INIT_EXT in flags. */
  readonly flags2: number;
}

export function parseInit(body: Buffer): InitIn {
  const flags = body.readUInt32LE(12);
  const flags2 = flags & InitFlag.INIT_EXT && body.length >= 20 ? body.readUInt32LE(16) : 0;
  return { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags, flags2 };
}

export interface InitOut {
  readonly maxReadahead: number;
  readonly flags: number;
  readonly maxBackground: number;
  readonly congestionThreshold: number;
  readonly maxWrite: number;
  readonly maxPages: number;
  readonly flags2: number;
  /** How deep in a filesystem stack a passthrough backing file may sit (0 without passthrough). */
  readonly maxStackDepth: number;
}

export function initOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT_SIZE);
  b.writeUInt32LE(KERNEL_MAJOR, 0);
  b.writeUInt32LE(KERNEL_MINOR, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: nanoseconds
  b.writeUInt16LE(o.maxPages, 28);
  b.writeUInt32LE(o.flags2 >>> 0, 32);
  b.writeUInt32LE(o.maxStackDepth, 36);
  return b;
}

/** fuse_read_in (READ and READDIR): offset and size. */
export function parseRead(body: Buffer): { fh: number; offset: number; size: number } {
  return { fh: readU64(body, 0), offset: readU64(body, 8), size: body.readUInt32LE(16) };
}

/** Timeouts the kernel may cache a name or attributes for. */
export interface Validity {
  readonly entrySec: number;
  readonly attrSec: number;
}

function writeAttr(b: Buffer, off: number, a: Attr): void {
  const ms = a.mtime.getTime();
  const sec = Math.floor(ms / 1000);
  writeI64(b, off, a.ino);
  writeI64(b, off + 8, a.size);
  writeI64(b, off + 16, a.blocks);
  writeI64(b, off + 24, 0); // atime
  writeI64(b, off + 32, sec);
  writeI64(b, off + 40, 0); // ctime
  b.writeUInt32LE(0, off + 48);
  b.writeUInt32LE((ms - sec * 1000) * 1e6, off + 52);
  b.writeUInt32LE(0, off + 56);
  b.writeUInt32LE(a.mode, off + 60);
  b.writeUInt32LE(a.nlink, off + 64);
  b.writeUInt32LE(a.uid, off + 68);
  b.writeUInt32LE(a.gid, off + 72);
  b.writeUInt32LE(a.rdev, off + 76);
  b.writeUInt32LE(4096, off + 80); // blksize
  b.writeUInt32LE(0, off + 84);
}

/** fuse_entry_out into `b` at `off`; nodeid 0 with no attr is a cached negative entry. */
function writeEntry(b: Buffer, off: number, nodeid: number, attr: Attr | undefined, v: Validity): void {
  writeI64(b, off, nodeid);
  writeI64(b, off + 8, 0); // generation: node ids are never reused for another file
  writeI64(b, off + 16, v.entrySec);
  writeI64(b, off + 24, attr ? v.attrSec : 0);
  b.writeUInt32LE(0, off + 32);
  b.writeUInt32LE(0, off + 36);
  if (attr) writeAttr(b, off + 40, attr);
  else b.fill(0, off + 40, off + ENTRY_OUT_SIZE);
}

export function entryOut(nodeid: number, attr: Attr | undefined, v: Validity): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT_SIZE);
  writeEntry(b, 0, nodeid, attr, v);
  return b;
}

export function attrOut(attr: Attr, v: Validity): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE);
  writeI64(b, 0, v.attrSec);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  writeAttr(b, 16, attr);
  return b;
}

export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(16);
  writeI64(b, 0, fh);
  b.writeUInt32LE(openFlags, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export function statfsOut(s: StatFs): Buffer {
  const b = Buffer.alloc(80);
  writeI64(b, 0, s.blocks);
  writeI64(b, 8, s.bfree);
  writeI64(b, 16, s.bavail);
  writeI64(b, 24, s.files);
  writeI64(b, 32, s.ffree);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namemax, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

/** fuse_getxattr_out: the size a GETXATTR/LISTXATTR probe (size 0) asked for. */
export function xattrSizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

export interface DirEntryOut {
  readonly name: string;
  readonly ino: number;
  readonly mode: number;
}

/**
 * fuse_dirent records for entries[from..], each one's `off` the index after it, as many
 * as fit in `size` bytes.
 */
export function dirents(entries: readonly DirEntryOut[], from: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let used = 0;
  for (let i = from; i < entries.length; i++) {
    const e = entries[i]!;
    const nameLen = Buffer.byteLength(e.name);
    const recLen = (DIRENT_HEADER_SIZE + nameLen + 7) & ~7;
    if (used + recLen > size) break;
    const b = Buffer.alloc(recLen);
    writeI64(b, 0, e.ino);
    writeI64(b, 8, i + 1);
    b.writeUInt32LE(nameLen, 16);
    b.writeUInt32LE((e.mode >>> 12) & 0o17, 20); // DT_* is the S_IFMT nibble
    b.write(e.name, DIRENT_HEADER_SIZE, 'utf8');
    parts.push(b);
    used += recLen;
  }
  return Buffer.concat(parts, used);
}
