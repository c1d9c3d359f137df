/**
 * Bounded gunzip: inflate concatenated gzip members only as far as needed and never
 * further, so a gzip bomb in a TOC or chunk range costs at most the bytes we asked for.
 */
import zlib from 'node:zlib';
import { SgError, type ErrorContext } from '../errors.js';
import { inflateHash } from '../native/chunk-decode.js';
import { sha256Hex } from '../sha256.js';

/**
 * How many output bytes are wanted in total, decided from the output seen so far
 * (`undefined`: not known yet, keep inflating). May throw to stop early.
 */
export type InflateGoal = (head: Buffer) => number | undefined;

/**
 * Inflates `input` (one or more gzip members, fed piece by piece) until the goal's number
 * of bytes is reached and returns exactly those bytes. `expected`: the output size when
 * the caller knows it (a chunk): zlib then inflates into one buffer of that size and the
 * bytes come back without being copied again. Errors: CORRUPT (bad gzip, or the stream
 * ended first), TOO_LARGE (more than `maxOut` bytes before the goal was known), ABORTED.
 */
export async function inflatePrefix(
  input: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  goal: InflateGoal,
  maxOut: number,
  context: ErrorContext,
  signal?: AbortSignal,
  expected?: number,
): Promise<Buffer> {
  const out: Buffer[] = [];
  let total = 0;
  // One byte more than expected, so that reaching the goal does not fill the buffer and
  // make zlib allocate another one.
  const pieceBytes = expected !== undefined && expected <= MAX_SINGLE_BUFFER ? Math.max(zlib.constants.Z_MIN_CHUNK, expected + 1) : PIECE_BYTES;
  await inflatePieces(input, goal, maxOut, context, (piece) => {
    out.push(piece);
    total += piece.length;
  }, signal, pieceBytes);
  return joinPieces(out, total);
}

/** The pieces as one buffer: a view when zlib wrote them back to back into one buffer. */
function joinPieces(pieces: readonly Buffer[], total: number): Buffer {
  if (pieces.length === 1) return pieces[0]!;
  const first = pieces[0];
  let end = first?.byteOffset ?? 0;
  for (const p of pieces) {
    if (p.buffer !== first!.buffer || p.byteOffset !== end) return Buffer.concat(pieces, total);
    end += p.length;
  }
  return first ? Buffer.from(first.buffer, first.byteOffset, total) : Buffer.alloc(0);
}

const PIECE_BYTES = 256 << 10;
/** Largest output inflated into a single buffer (a chunk; bigger ones come in pieces). */
const MAX_SINGLE_BUFFER = 64 << 20;

/**
 * Inflates `input` (one or more gzip members, fed piece by piece) until the goal's number
 * of bytes and passes exactly those to `onPiece`, in order, so that an output too big to
 * hold in one buffer never is: a 100k-entry TOC is ~30 MB of JSON, and one malloc'd block
 * that size per opened layer (freed again) leaves glibc's heap fragmented by ~100 MB after
 * 20 layers. Errors: as inflatePrefix, or whatever `onPiece` or `input` throws.
 */
export function inflatePieces(
  input: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  goal: InflateGoal,
  maxOut: number,
  context: ErrorContext,
  onPiece: (piece: Buffer) => void,
  signal?: AbortSignal,
  pieceBytes = PIECE_BYTES,
): Promise<void> {
  // Big output pieces when much output is expected (a TOC, a 4 MiB chunk): fewer callbacks.
  const gz = zlib.createGunzip({ chunkSize: pieceBytes });
  // Output before the goal is known, kept to show the goal.
  let head: Buffer[] = [];
  let total = 0;
  let wanted: number | undefined;
  let settled = false;
  let finish: (err?: unknown) => void = () => {};

  const result = new Promise<void>((resolve, reject) => {
    finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      gz.destroy();
      if (err !== undefined) reject(err);
      else resolve();
    };
  });
  const onAbort = () => finish(new SgError('ABORTED', 'inflate aborted', context, { cause: signal?.reason }));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });

  gz.on('data', (d: Buffer) => {
    if (settled) return;
    const before = total;
    total += d.length;
    try {
      if (wanted === undefined) {
        head.push(d);
        const seen = head.length === 1 ? d : Buffer.concat(head);
        wanted = goal(seen);
        if (wanted === undefined) {
          if (total > maxOut) finish(new SgError('TOO_LARGE', `more than ${maxOut} bytes inflated without reaching the end`, { ...context, maxOut }));
          return;
        }
        head = [];
        onPiece(seen.subarray(0, wanted));
      } else {
        onPiece(d.subarray(0, Math.max(0, wanted - before)));
      }
    } catch (err) {
      finish(err);
      return;
    }
    if (total >= wanted) finish();
  });
  gz.on('error', (err) => finish(new SgError('CORRUPT', `gzip: ${err.message}`, context, { cause: err })));
  gz.on('end', () => {
    if (wanted !== undefined && total >= wanted) finish();
    else finish(new SgError('CORRUPT', 'gzip data ended early', { ...context, inflated: total, wanted }));
  });

  void (async () => {
    for await (const piece of input) {
      if (settled) return;
      if (!gz.write(piece)) {
        await new Promise<void>((resolve) => {
          gz.once('drain', resolve);
          gz.once('close', resolve);
        });
      }
    }
    if (!settled) gz.end();
  })().catch((err: unknown) => finish(err));

  return result;
}

/**
 * The first `wanted` bytes of a chunk's gzip data, and the hex sha256 of those from
 * `hashFrom` on. The member's deflate stream is inflated raw after its header, parsed here,
 * and hashed in the same thread-pool job (native/chunk-decode.c): zlib computes no CRC-32
 * (the caller checks the SHA-256 instead), and nothing is copied on the way. Data that runs
 * on past the first member, or anything raw inflating rejects, goes through gunzip, which
 * then reports the error if there is one.
 */
export async function inflateChunk(
  compressed: Uint8Array,
  wanted: number,
  hashFrom: number,
  context: ErrorContext,
  signal?: AbortSignal,
): Promise<{ bytes: Buffer; hex: string }> {
  const start = deflateStart(compressed);
  if (start !== undefined) {
    const out = Buffer.allocUnsafe(wanted);
    const done = await inflateHash(compressed.subarray(start), out, hashFrom).catch(() => undefined);
    if (signal?.aborted) throw new SgError('ABORTED', 'inflate aborted', context, { cause: signal.reason });
    if (done?.produced === wanted) return { bytes: out, hex: done.hex };
  }
  const bytes = await inflatePrefix([compressed], () => wanted, wanted, context, signal, wanted);
  return { bytes, hex: await sha256Hex(bytes.subarray(hashFrom)) };
}

const RESERVED_FLAGS = 0xe0;
const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/** Where the deflate data of the gzip member at the start of `b` begins (RFC 1952), if its header is whole and valid. */
export function deflateStart(b: Uint8Array): number | undefined {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8) return undefined;
  const flags = b[3]!;
  if (flags & RESERVED_FLAGS) return undefined;
  let p = 10;
  if (flags & FEXTRA) {
    if (p + 2 > b.length) return undefined;
    p += 2 + (b[p]! | (b[p + 1]! << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    while (p < b.length && b[p] !== 0) p++;
    p++;
  }
  if (flags & FHCRC) p += 2;
  return p < b.length ? p : undefined;
}
