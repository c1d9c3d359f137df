/**
 * Inflating and hashing chunks on libuv's thread pool without copying them
 * (native/chunk-decode.c, Node's own zlib and OpenSSL).
 */
import { loadAddon } from './addon.js';

interface ChunkDecodeAddon {
  inflateHash(deflate: Uint8Array, out: Uint8Array, hashFrom: number, cb: (err: Error | undefined, produced: number, hex: string) => void): void;
  hash(bytes: Uint8Array, cb: (err: Error | undefined, hex: string) => void): void;
}

const addon = () => loadAddon<ChunkDecodeAddon>('chunk-decode');

/**
 * Inflates raw deflate data into `out` until it is full or the deflate stream ends, then
 * hashes out[hashFrom, produced). Rejects with zlib's message for invalid data. Neither
 * buffer may be touched until it settles.
 */
export function inflateHash(deflate: Uint8Array, out: Uint8Array, hashFrom: number): Promise<{ produced: number; hex: string }> {
  return new Promise((resolve, reject) =>
    addon().inflateHash(deflate, out, hashFrom, (err, produced, hex) => (err ? reject(err) : resolve({ produced, hex }))),
  );
}

/** Hex sha256 of `bytes`, computed on the thread pool. */
export function sha256OffThread(bytes: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => addon().hash(bytes, (err, hex) => (err ? reject(err) : resolve(hex))));
}
