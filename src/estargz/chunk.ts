/**
 * One chunk from compressed bytes to verified bytes. A chunk's gzip member starts at
 * `offset`; the bytes up to the next member that starts another chunk (`compressedEnd`)
 * are the least range sure to hold it, since only inflating tells where the chunk's data
 * ends. We inflate just `innerOffset + chunkSize` bytes of it and return nothing that
 * does not match the digest.
 */
import { SgError } from '../errors.js';
import type { BlobSource } from '../source/blob-source.js';
import { inflateChunk } from './inflate.js';
import type { Chunk } from './toc.js';

/** Message of the CORRUPT error for a chunk whose bytes do not match its digest. */
export const CHUNK_DIGEST_MISMATCH = 'chunk digest mismatch';

export interface ChunkContext {
  /** Clean name of the file the chunk belongs to. */
  readonly entry: string;
  /** The blob, for error messages. */
  readonly blob: string;
}

/** The compressed blob range to fetch for a chunk. */
export function chunkRange(c: Chunk): { offset: number; length: number } {
  return { offset: c.offset, length: c.compressedEnd - c.offset };
}

/** Inflates and verifies a chunk from the bytes of `chunkRange(c)` (CORRUPT on any mismatch). */
export async function decodeChunk(compressed: Uint8Array, c: Chunk, ctx: ChunkContext, signal?: AbortSignal): Promise<Buffer> {
  const context = { blob: ctx.blob, entry: ctx.entry, chunkOffset: c.chunkOffset, chunkSize: c.chunkSize, offset: c.offset };
  const wanted = c.innerOffset + c.chunkSize;
  const { bytes, hex } = await inflateChunk(compressed, wanted, c.innerOffset, context, signal);
  const actual = 'sha256:' + hex;
  if (actual !== c.digest) {
    throw new SgError('CORRUPT', CHUNK_DIGEST_MISMATCH, { ...context, expected: c.digest, actual });
  }
  return bytes.subarray(c.innerOffset);
}

/** Fetches and verifies one chunk straight from the blob (no cache). */
export async function readChunk(source: BlobSource, c: Chunk, entry: string, signal?: AbortSignal): Promise<Buffer> {
  const { offset, length } = chunkRange(c);
  const bytes = await source.readRange(offset, length, signal);
  return decodeChunk(bytes, c, { entry, blob: source.describe }, signal);
}
