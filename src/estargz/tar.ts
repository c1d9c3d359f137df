/**
 * Just enough tar for eStargz: read headers (ustar, PAX, GNU long names, V7) with their
 * raw byte ranges so the writer can copy them unchanged, and write the plain ustar headers
 * the format itself adds (landmarks, `stargz.index.json`). Semantics follow Go's
 * archive/tar, which the reference writer reads its input with.
 */
import { SgError } from '../errors.js';

export const BLOCK = 512;

export interface TarTime {
  /** Seconds since the epoch, rounded down. */
  readonly sec: number;
  /** 0 ≤ nsec < 1e9. */
  readonly nsec: number;
}

export interface TarHeader {
  readonly name: string;
  readonly linkName: string;
  /** Typeflag character after Go's normalisation (`\0` → `0`, or `5` for names ending in `/`). */
  readonly typeflag: string;
  /** Bytes of data that follow the header (0 for header-only types, whatever the size field says). */
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly mtime: TarTime;
  readonly devMajor: number;
  readonly devMinor: number;
  /** From PAX `SCHILY.xattr.*` records; values are raw bytes (empty values are kept). */
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export type TarStep =
  | { readonly kind: 'entry'; readonly header: TarHeader; readonly headerStart: number; readonly dataStart: number; readonly next: number }
  | { readonly kind: 'end' }
  /** `need` bytes from the position asked for are required to decide. */
  | { readonly kind: 'more'; readonly need: number };

/** Largest PAX or GNU long-name payload we accept: real ones are a few KiB. */
const MAX_EXTENSION = 1 << 20;
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

const pad512 = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/**
 * Parses the entry whose first header block is at `buf[pos]` (`pos` is also the archive
 * offset reported in errors: pass `base` when `buf` starts inside the archive).
 * `eof`: no bytes follow `buf`.
 */
export function parseEntryAt(buf: Uint8Array, pos: number, eof: boolean, base = 0): TarStep {
  const headerStart = pos;
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    if (buf.length - pos < BLOCK) {
      if (eof && buf.length === pos) return { kind: 'end' }; // archive without trailer, as Go accepts
      if (eof) throw bad('truncated tar header', base + pos);
      return { kind: 'more', need: pos + BLOCK - headerStart };
    }
    const block = buf.subarray(pos, pos + BLOCK);
    if (isZero(block)) {
      if (pos !== headerStart) throw bad('end of archive inside an entry', base + pos);
      if (buf.length - pos < 2 * BLOCK && !eof) return { kind: 'more', need: 2 * BLOCK };
      if (buf.length - pos >= 2 * BLOCK && !isZero(buf.subarray(pos + BLOCK, pos + 2 * BLOCK))) {
        throw bad('lone zero block in tar', base + pos);
      }
      return { kind: 'end' };
    }
    const raw = decodeBlock(block, base + pos);
    const dataStart = pos + BLOCK;
    if (raw.typeflag === 'x' || raw.typeflag === 'L' || raw.typeflag === 'K') {
      if (raw.size > MAX_EXTENSION) throw bad(`tar extension header of ${raw.size} bytes`, base + pos);
      const end = dataStart + raw.size;
      if (buf.length < end) {
        if (eof) throw bad('truncated tar extension header', base + pos);
        return { kind: 'more', need: pad512(end) - headerStart };
      }
      const data = Buffer.from(buf.subarray(dataStart, end));
      if (raw.typeflag === 'x') pax = new Map([...(pax ?? []), ...parsePax(data, base + pos)]);
      else if (raw.typeflag === 'L') longName = cString(data);
      else longLink = cString(data);
      pos = dataStart + pad512(raw.size);
      continue;
    }
    if (raw.typeflag === 'g') throw bad('PAX global headers are not supported', base + pos);
    const header = applyExtensions(raw, pax, longName, longLink, base + pos);
    return { kind: 'entry', header, headerStart, dataStart, next: dataStart + pad512(header.size) };
  }
}

interface RawBlock {
  name: string;
  linkName: string;
  typeflag: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  devMajor: number;
  devMinor: number;
}

function decodeBlock(b: Uint8Array, at: number): RawBlock {
  const want = numeric(b, 148, 8, at);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  if (want !== unsigned && want !== signed) throw bad('tar header checksum mismatch', at);
  const magic = latin1(b, 257, 6);
  const version = latin1(b, 263, 2);
  const ustar = magic === 'ustar\0' && version === '00';
  const gnu = magic === 'ustar ' && version === ' \0';
  let name = cString(b.subarray(0, 100));
  if (ustar) {
    const star = latin1(b, 508, 4) === 'tar\0';
    const prefix = cString(b.subarray(345, star ? 476 : 500));
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const typeflag = String.fromCharCode(b[156]!);
  const extended = ustar || gnu;
  return {
    name,
    linkName: cString(b.subarray(157, 257)),
    typeflag,
    size: numeric(b, 124, 12, at),
    mode: numeric(b, 100, 8, at),
    uid: numeric(b, 108, 8, at),
    gid: numeric(b, 116, 8, at),
    uname: extended ? cString(b.subarray(265, 297)) : '',
    gname: extended ? cString(b.subarray(297, 329)) : '',
    mtime: numeric(b, 136, 12, at),
    devMajor: extended ? numeric(b, 329, 8, at) : 0,
    devMinor: extended ? numeric(b, 337, 8, at) : 0,
  };
}

function applyExtensions(raw: RawBlock, pax: Map<string, Buffer> | undefined, longName: string | undefined, longLink: string | undefined, at: number): TarHeader {
  let { name, linkName, size, uid, gid, uname, gname } = raw;
  let mtime: TarTime = { sec: raw.mtime, nsec: 0 };
  if (longName !== undefined) name = longName;
  if (longLink !== undefined) linkName = longLink;
  const xattrs = new Map<string, Buffer>();
  for (const [key, value] of pax ?? []) {
    const text = value.toString('utf8');
    if (key.startsWith('GNU.sparse.')) throw bad('sparse files are not supported', at);
    if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    else if (key === 'path') name = text;
    else if (key === 'linkpath') linkName = text;
    else if (key === 'uname') uname = text;
    else if (key === 'gname') gname = text;
    else if (key === 'uid') uid = paxInt(text, key, at);
    else if (key === 'gid') gid = paxInt(text, key, at);
    else if (key === 'size') size = paxInt(text, key, at);
    else if (key === 'mtime') mtime = paxTime(text, at);
  }
  if (raw.typeflag === 'S') throw bad('sparse files are not supported', at);
  // Go's reader turns the old "regular file" flag NUL into a directory when the name says so.
  const typeflag = raw.typeflag === '\0' ? (name.endsWith('/') ? '5' : '0') : raw.typeflag;
  if (HEADER_ONLY.has(typeflag)) size = 0;
  return { name, linkName, typeflag, size, mode: raw.mode, uid, gid, uname, gname, mtime, devMajor: raw.devMajor, devMinor: raw.devMinor, xattrs };
}

/** PAX records `"<len> <key>=<value>\n"`; values stay bytes (xattrs may be binary). */
function parsePax(data: Buffer, at: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < data.length) {
    if (data[p] === 0) break; // NUL padding after the last record
    const sp = data.indexOf(0x20, p);
    const lenText = sp < 0 ? '' : data.toString('latin1', p, sp);
    const len = /^[0-9]{1,8}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > 0) || p + len > data.length || data[p + len - 1] !== 0x0a) throw bad('malformed PAX record', at);
    const rec = data.subarray(sp + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad('malformed PAX record', at);
    out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    p += len;
  }
  return out;
}

function paxInt(text: string, key: string, at: number): number {
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw bad(`bad PAX ${key} ${JSON.stringify(text)}`, at);
  return Number(text);
}

/** `[-]sec[.frac]` → floor seconds + nanoseconds, like Go's parsePAXTime. */
function paxTime(text: string, at: number): TarTime {
  const m = /^(-?)([0-9]{1,15})(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw bad(`bad PAX mtime ${JSON.stringify(text)}`, at);
  const sec = Number(m[2]);
  const nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (m[1] !== '-') return { sec, nsec };
  return nsec === 0 ? { sec: -sec, nsec: 0 } : { sec: -sec - 1, nsec: 1e9 - nsec };
}

/** Octal (NUL/space padded) or GNU base-256 number field. */
function numeric(b: Uint8Array, off: number, len: number, at: number): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    // Base-256: big-endian two's complement with the top bit of the first byte as a flag.
    let v = BigInt(f[0]! & 0x7f) - (f[0]! & 0x40 ? 0x80n : 0n);
    for (let i = 1; i < f.length; i++) v = (v << 8n) | BigInt(f[i]!);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('tar number out of range', at);
    return Number(v);
  }
  const text = Buffer.from(f).toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw bad(`bad octal field ${JSON.stringify(text)}`, at);
  return parseInt(text, 8);
}

function cString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return Buffer.from(b.buffer, b.byteOffset, nul < 0 ? b.length : nul).toString('utf8');
}

const latin1 = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.buffer, b.byteOffset + off, len).toString('latin1');

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

const bad = (message: string, offset: number): SgError => new SgError('INVALID_ARGUMENT', message, { offset });

/**
 * A ustar header for a regular file with a short name, mode 0, owner 0 and mtime 0: what
 * the format adds itself (landmarks, `stargz.index.json`).
 */
export function encodeFileHeader(name: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new SgError('INVALID_ARGUMENT', 'name too long for a ustar header', { name });
  b.write(name, 0, 'utf8');
  const octal = (off: number, len: number, v: number) => b.write(v.toString(8).padStart(len - 1, '0') + '\0', off, 'latin1');
  octal(100, 8, 0); // mode
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 0); // mtime
  b.write('0', 156, 'latin1');
  b.write('ustar\x0000', 257, 'latin1');
  octal(329, 8, 0);
  octal(337, 8, 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function paddingFor(size: number): Buffer {
  return Buffer.alloc(pad512(size) - size);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
