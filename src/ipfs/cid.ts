/**
 * CID syntax, checked without a multiformats dependency: image descriptors must name
 * their blobs by CIDv1 in lowercase base32 (multibase prefix `b`), spec §1.4.
 */
import { SgError } from '../errors.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** `b` + base32 of <varint 1><varint codec><varint hash fn><varint digest length><digest>. */
export function isCidV1Base32(s: string): boolean {
  if (s.length < 8 || s[0] !== 'b') return false;
  const bytes = decodeBase32(s.slice(1));
  if (!bytes) return false;
  let pos = 0;
  const varint = (): number | undefined => {
    let value = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      const b = bytes[pos++];
      if (b === undefined) return undefined;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    return undefined;
  };
  const version = varint();
  const codec = varint();
  const hashFn = varint();
  const digestLength = varint();
  return version === 1 && codec !== undefined && hashFn !== undefined && digestLength !== undefined && digestLength > 0 && pos + digestLength === bytes.length;
}

/** `CID`, `ipfs://CID` or `/ipfs/CID` → CID (CIDv1 base32 only). */
export function parseIpfsRef(ref: string): string {
  const cid = ref.trim().replace(/^ipfs:\/\//, '').replace(/^\/ipfs\//, '');
  if (!isCidV1Base32(cid)) {
    throw new SgError('INVALID_ARGUMENT', 'not an IPFS reference: expected CID, ipfs://CID or /ipfs/CID with a base32 CIDv1', { ref });
  }
  return cid;
}

/** The CID of the first `ipfs://` URL, or undefined when there is none. */
export function cidFromUrls(urls: readonly string[] | undefined): string | undefined {
  const url = urls?.find((u) => u.startsWith('ipfs://'));
  return url?.slice('ipfs://'.length);
}

function decodeBase32(s: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor((s.length * 5) / 8));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (const ch of s) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  // Canonical unpadded base32: fewer than 5 leftover bits, all zero.
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
