/**
 * Bounded gunzip: inflate concatenated gzip members only as far as needed and never
 * further, so a gzip bomb in a TOC or chunk range costs at most the bytes we asked for.
 */
import zlib from 'node:zlib';
import { SgError, type ErrorContext } from '../errors.js';

/**
 * How many output bytes are wanted in total, decided from the output seen so far
 * (`undefined`: not known yet, keep inflating). May throw to stop early.
 */
export type InflateGoal = (head: Buffer) => number | undefined;

/**
 * Inflates `input` (one or more gzip members, fed piece by piece) until the goal's number
 * of bytes is reached and returns exactly those bytes. Errors: CORRUPT (bad gzip, or the
 * stream ended first), TOO_LARGE (more than `maxOut` bytes before the goal was known),
 * ABORTED.
 */
export function inflatePrefix(
  input: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  goal: InflateGoal,
  maxOut: number,
  context: ErrorContext,
  signal?: AbortSignal,
): Promise<Buffer> {
  // Big output pieces when much output is expected (a TOC, a 4 MiB chunk): fewer callbacks.
  const gz = zlib.createGunzip({ chunkSize: 256 << 10 });
  const out: Buffer[] = [];
  let total = 0;
  let wanted: number | undefined;
  let settled = false;
  let finish: (err?: unknown) => void = () => {};

  const result = new Promise<Buffer>((resolve, reject) => {
    finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      gz.destroy();
      if (err !== undefined) reject(err);
      else resolve(Buffer.concat(out, total).subarray(0, wanted));
    };
  });
  const onAbort = () => finish(new SgError('ABORTED', 'inflate aborted', context, { cause: signal?.reason }));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });

  gz.on('data', (d: Buffer) => {
    if (settled) return;
    out.push(d);
    total += d.length;
    if (wanted === undefined) {
      try {
        wanted = goal(out.length === 1 ? d : Buffer.concat(out, total));
      } catch (err) {
        finish(err);
        return;
      }
    }
    if (wanted !== undefined && total >= wanted) finish();
    else if (wanted === undefined && total > maxOut) {
      finish(new SgError('TOO_LARGE', `more than ${maxOut} bytes inflated without reaching the end`, { ...context, maxOut }));
    }
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
