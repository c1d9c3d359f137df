/**
 * ContentStore.write's WRITE pieces: a stream's small chunks gathered into WRITE_PIECE-sized
 * messages (the last one shorter, sized by the expected length), whole pieces passed through as
 * views, a buffer cut into views; the bytes always the same, in order, nothing lost or added.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pieces, WRITE_PIECE } from '../src/containerd/content.js';

async function collect(data: Uint8Array | AsyncIterable<Uint8Array>, size?: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const p of pieces(data, size)) out.push(p);
  return out;
}

async function* chunked(buf: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield buf.subarray(at, at + n);
    at += n;
  }
}

test('small chunks are gathered into full pieces; the last is exactly the rest', async () => {
  const data = randomBytes(2 * WRITE_PIECE + 12345);
  const out = await collect(chunked(data, [1000, 65536, 7]), data.length);
  assert.deepEqual(out.map((p) => p.length), [WRITE_PIECE, WRITE_PIECE, 12345]);
  assert.deepEqual(Buffer.concat(out), data);
});

test('a whole piece arriving with nothing gathered is passed through as a view', async () => {
  const data = randomBytes(WRITE_PIECE * 2 + 10);
  const out = await collect(chunked(data, [WRITE_PIECE + 5, WRITE_PIECE + 5]), data.length);
  assert.deepEqual(out.map((p) => p.length), [WRITE_PIECE, WRITE_PIECE, 10]);
  assert.equal(out[0]!.buffer, data.buffer);
  assert.deepEqual(Buffer.concat(out), data);
});

test('a buffer becomes views; a short stream, an empty one and an over-long one come out as they are', async () => {
  const data = randomBytes(WRITE_PIECE + 3);
  const views = await collect(data);
  assert.deepEqual(views.map((p) => p.length), [WRITE_PIECE, 3]);
  assert.ok(views.every((v) => v.buffer === data.buffer));
  assert.deepEqual(Buffer.concat(await collect(chunked(data.subarray(0, 100), [30]), 1000)), data.subarray(0, 100));
  assert.deepEqual(await collect(chunked(Buffer.alloc(0), [1]), 0), []);
  // More than expected: all of it still comes out (ContentStore.write refuses it by offset).
  assert.deepEqual(Buffer.concat(await collect(chunked(data.subarray(0, 100), [30]), 40)), data.subarray(0, 100));
});
