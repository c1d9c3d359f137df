/**
 * The footer at the end of every eStargz blob: an empty gzip member whose Extra field
 * carries the TOC offset. Two layouts exist:
 *
 *   eStargz (51 bytes): gzip header with FLG=FEXTRA, XLEN=26, subfield `S` `G`, LEN=22,
 *                       payload `%016x` TOC offset + `STARGZ`, empty stored block, CRC, ISIZE
 *   legacy stargz (47): the same without the 4-byte subfield header (XLEN=22)
 *
 * Like the Go reader we only trust the header and Extra field; the empty deflate block
 * and trailer after it carry no information.
 */
import { SgError } from '../errors.js';

export const FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;

export interface Footer {
  /** Where the TOC gzip member starts. */
  readonly tocOffset: number;
  readonly footerSize: typeof FOOTER_SIZE | typeof LEGACY_FOOTER_SIZE;
}

const MAGIC = 'STARGZ';
const FEXTRA = 0x04;

/**
 * Parses the footer from the last bytes of a blob (`tail` = up to the last 51 bytes).
 * Neither layout → NOT_ESTARGZ. The offset is not checked against the blob size here.
 */
export function parseFooter(tail: Uint8Array, blob = ''): Footer {
  const reasons: string[] = [];
  for (const size of [FOOTER_SIZE, LEGACY_FOOTER_SIZE] as const) {
    if (tail.length < size) {
      reasons.push(`${size}-byte footer: blob too small`);
      continue;
    }
    const f = tail.subarray(tail.length - size);
    const why = size === FOOTER_SIZE ? parseExtra(f, 26, true) : parseExtra(f, 22, false);
    if (typeof why === 'number') return { tocOffset: why, footerSize: size };
    reasons.push(`${size}-byte footer: ${why}`);
  }
  throw new SgError('NOT_ESTARGZ', `no eStargz footer (${reasons.join('; ')})`, { blob, tailBytes: tail.length });
}

/** The TOC offset, or why the footer does not parse. */
function parseExtra(f: Uint8Array, xlen: number, subfield: boolean): number | string {
  if (f[0] !== 0x1f || f[1] !== 0x8b || f[2] !== 0x08) return 'not a gzip header';
  if (f[3] !== FEXTRA) return 'gzip flags are not FEXTRA';
  if ((f[10]! | (f[11]! << 8)) !== xlen) return `extra field length is not ${xlen}`;
  let p = 12;
  if (subfield) {
    if (f[12] !== 0x53 || f[13] !== 0x47) return 'subfield id is not SG';
    if ((f[14]! | (f[15]! << 8)) !== 22) return 'subfield length is not 22';
    p = 16;
  }
  const text = Buffer.from(f.subarray(p, p + 22)).toString('latin1');
  if (text.slice(16) !== MAGIC) return 'STARGZ magic missing';
  const hex = text.slice(0, 16);
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) return 'TOC offset is not 16 hex digits';
  const offset = BigInt('0x' + hex);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return 'TOC offset too large';
  return Number(offset);
}

/** The 51-byte footer pointing at `tocOffset`, byte for byte what the Go writer emits. */
export function encodeFooter(tocOffset: number): Buffer {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) {
    throw new SgError('INVALID_ARGUMENT', 'TOC offset out of range', { tocOffset });
  }
  const f = Buffer.alloc(FOOTER_SIZE);
  // Header: magic, CM=deflate, FLG=FEXTRA, MTIME=0, XFL=0, OS=255 (unknown) as Go writes it.
  f.set([0x1f, 0x8b, 0x08, FEXTRA, 0, 0, 0, 0, 0, 0xff], 0);
  f.writeUInt16LE(26, 10);
  f.set([0x53, 0x47], 12);
  f.writeUInt16LE(22, 14);
  f.write(tocOffset.toString(16).padStart(16, '0') + MAGIC, 16, 'latin1');
  // Final empty stored block (BFINAL=1, LEN=0, NLEN=0xffff); CRC32 and ISIZE of nothing are 0.
  f.set([0x01, 0x00, 0x00, 0xff, 0xff], 38);
  return f;
}
