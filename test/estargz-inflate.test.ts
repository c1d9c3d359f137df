/**
 * Chunk inflation (src/estargz/inflate.ts): gzip members inflated raw after our own header
 * parse, with gunzip as the fallback, give the same bytes and the same errors as gunzip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { isSgError } from '../src/errors.js';
import { deflateStart, inflateChunk } from '../src/estargz/inflate.js';
import { decodeChunk } from '../src/estargz/chunk.js';
import { sha256Hex } from '../src/sha256.js';

/** A gzip member with the optional header fields RFC 1952 allows (Node's gzip writes none). */
function member(data: Buffer, opts: { extra?: Buffer; name?: string; comment?: string; hcrc?: boolean } = {}): Buffer {
  const flags = (opts.hcrc ? 2 : 0) | (opts.extra ? 4 : 0) | (opts.name !== undefined ? 8 : 0) | (opts.comment !== undefined ? 16 : 0);
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255])];
  if (opts.extra) parts.push(Buffer.from([opts.extra.length & 0xff, opts.extra.length >> 8]), opts.extra);
  if (opts.name !== undefined) parts.push(Buffer.from(`${opts.name}\0`, 'latin1'));
  if (opts.comment !== undefined) parts.push(Buffer.from(`${opts.comment}\0`, 'latin1'));
  if (opts.hcrc) parts.push(Buffer.from([0, 0]));
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length, 4);
  return Buffer.concat([...parts, deflateRawSync(data), trailer]);
}

const ctx = { blob: 'test' };

test('every optional gzip header field is skipped to the deflate data', async () => {
  const data = randomBytes(70_000);
  for (const opts of [{}, { name: 'file.bin' }, { comment: 'c' }, { extra: Buffer.from('xyz') }, { hcrc: true }, { name: 'n', comment: 'c', extra: Buffer.alloc(300, 1), hcrc: true }]) {
    const m = member(data, opts);
    assert.ok(deflateStart(m)! >= 10, JSON.stringify(opts));
    assert.deepEqual((await inflateChunk(m, data.length, 0, ctx)).bytes, data, JSON.stringify(opts));
    assert.deepEqual((await inflateChunk(m, 1000, 0, ctx)).bytes, data.subarray(0, 1000));
  }
  assert.equal(deflateStart(Buffer.from([0x1f, 0x8b, 8, 0])), undefined, 'a header cut short');
  assert.equal(deflateStart(Buffer.from([0x1f, 0x8b, 8, 0xe0, 0, 0, 0, 0, 0, 0, 1])), undefined, 'reserved flag bits');
  assert.equal(deflateStart(gzipSync(Buffer.alloc(0)).subarray(1)), undefined, 'no gzip magic');
});

test('data that runs on into the next member comes out whole (gunzip fallback)', async () => {
  const a = randomBytes(50_000);
  const b = randomBytes(50_000);
  const both = Buffer.concat([member(a), gzipSync(b)]);
  assert.deepEqual((await inflateChunk(both, 100_000, 0, ctx)).bytes, Buffer.concat([a, b]));
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('the hash comes with the bytes, from hashFrom on, on the raw path and the gunzip fallback alike', async () => {
  const data = randomBytes(300_000);
  for (const from of [0, 1, 123_456, 300_000]) {
    const raw = await inflateChunk(member(data), data.length, from, ctx);
    assert.deepEqual(raw.bytes, data);
    assert.equal(raw.hex, sha(data.subarray(from)), `raw path, hashFrom ${from}`);
  }
  const a = data.subarray(0, 100_000);
  const b = data.subarray(100_000);
  const fallback = await inflateChunk(Buffer.concat([member(a), gzipSync(b)]), data.length, 5, ctx);
  assert.deepEqual(fallback.bytes, data);
  assert.equal(fallback.hex, sha(data.subarray(5)), 'gunzip fallback');
  // Big inputs are hashed off the event loop, small ones on it: both agree with node:crypto.
  for (const n of [0, 1000, 256 << 10, 5 << 20]) {
    const bytes = randomBytes(n);
    assert.equal(await sha256Hex(bytes), sha(bytes), `${n} bytes`);
  }
});

test('broken deflate data and a stream that ends early are CORRUPT, as with gunzip', async () => {
  // Damage that inflating cannot see (inside a stored block) is the caller's to catch: it
  // checks the chunk's SHA-256 (decodeChunk), as gunzip's CRC-32 would have.
  const data = randomBytes(10_000);
  const bad = member(data);
  bad[deflateStart(bad)!] = 0xff; // block type 3: reserved
  await assert.rejects(inflateChunk(bad, data.length, 0, ctx), (e: unknown) => isSgError(e, 'CORRUPT'));
  await assert.rejects(inflateChunk(member(data), data.length + 1, 0, ctx), (e: unknown) => isSgError(e, 'CORRUPT'));
  await assert.rejects(inflateChunk(randomBytes(100), 50, 0, ctx), (e: unknown) => isSgError(e, 'CORRUPT'));
});

test('a chunk whose bytes were damaged where inflating cannot see it is still refused (digest check), never returned', async () => {
  const data = randomBytes(10_000);
  const m = member(data);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const chunk = { index: 0, member: 0, offset: 0, innerOffset: 0, nextOffset: m.length, compressedEnd: m.length, chunkOffset: 0, chunkSize: data.length, rawChunkSize: data.length, chunkDigest: digest, digest };
  assert.deepEqual(await decodeChunk(m, chunk, { entry: 'f', blob: 'test' }), data);
  const damaged = Buffer.from(m);
  const at = deflateStart(m)! + 100; // inside the stored block's payload
  damaged[at] = damaged[at]! ^ 1;
  await assert.rejects(decodeChunk(damaged, chunk, { entry: 'f', blob: 'test' }), (e: unknown) => isSgError(e, 'CORRUPT') && /digest mismatch/.test((e as Error).message));
});
