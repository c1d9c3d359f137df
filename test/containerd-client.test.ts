/**
 * The containerd client against Debian's containerd 1.6: content written through the Write
 * stream reads back (whole and by range), a second write of the same blob is AlreadyExists
 * (= success, labels updated), labels update by field, images get/create/put, leases, and
 * errors come back as SgError codes with context.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startContainerd, type Containerd as Harness } from './harness/containerd.js';
import { connectContainerd, type Containerd } from '../src/containerd/client.js';
import type { ContentStore } from '../src/containerd/content.js';
import { ContentBlobSource } from '../src/containerd/content-source.js';
import { isSgError, type ErrorCode } from '../src/errors.js';

let scratch: string;
let ctd: Harness;
let client: Containerd;
/** Content written outside a lease and referenced by nothing is fair game for containerd's GC. */
let held: ContentStore;

before(async () => {
  reapStale();
  scratch = makeScratch();
  ctd = await startContainerd(scratch);
  client = connectContainerd(ctd.address, ctd.namespace);
  held = client.content(await client.leases.create('sgt-tests', 600_000));
});
after(async () => {
  client?.close();
  await ctd?.stop();
  destroyScratch(scratch);
});

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hasCode = (code: ErrorCode) => (e: unknown) => isSgError(e, code);

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

async function* chunked(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < b.length; at += size) yield b.subarray(at, at + size);
}

test('write a blob in many pieces under a lease, read it back whole and by range', async () => {
  const blob = randomBytes(5 * 1024 * 1024 + 123);
  const digest = sha256(blob);
  const lease = await client.leases.create('sgt', 60_000);
  assert.ok((await client.leases.list()).includes(lease));
  const content = client.content(lease);
  const res = await content.write(`sgt-${digest}`, { digest, size: blob.length }, chunked(blob, 300_000), { 'test.label': 'a' });
  assert.deepEqual(res, { written: true });
  const info = await content.info(digest);
  assert.equal(info.size, blob.length);
  assert.equal(info.labels['test.label'], 'a');
  assert.ok(Buffer.from(await collect(content.read(digest))).equals(blob));
  const part = await collect(content.read(digest, { offset: 1_000_000, length: 2_000_000 }));
  assert.ok(part.equals(blob.subarray(1_000_000, 3_000_000)));
  const source = new ContentBlobSource(content, digest, blob.length);
  assert.ok(Buffer.from(await source.readRange(blob.length - 51, 51)).equals(blob.subarray(-51)));
  await assert.rejects(source.readRange(blob.length - 10, 11), hasCode('INVALID_ARGUMENT'));
  await client.leases.delete(lease);
  assert.ok(!(await client.leases.list()).includes(lease));
});

test('several large blobs written at once on one connection all land (flow control, not reset streams), and read back at once', async () => {
  const blobs = [0, 1, 2, 3].map(() => randomBytes(24 * 1024 * 1024 + 77));
  const lease = await client.leases.create('sgt', 120_000);
  const content = client.content(lease);
  const results = await Promise.all(blobs.map((b) => content.write(`sgt-par-${sha256(b)}`, { digest: sha256(b), size: b.length }, chunked(b, 64 * 1024))));
  assert.deepEqual(results, blobs.map(() => ({ written: true })));
  const back = await Promise.all(blobs.map((b) => collect(content.read(sha256(b)))));
  for (let i = 0; i < blobs.length; i++) assert.ok(back[i]!.equals(blobs[i]!), `blob ${i} reads back`);
  await client.leases.delete(lease);
});

test('writing a blob the store has is AlreadyExists, taken as success; its labels are set', async () => {
  const blob = Buffer.from('already there\n');
  const digest = sha256(blob);
  const content = held;
  assert.deepEqual(await content.write('sgt-twice', { digest, size: blob.length }, blob), { written: true });
  assert.deepEqual(await content.write('sgt-twice', { digest, size: blob.length }, blob, { 'second.label': 'b' }), { written: false });
  assert.equal((await content.info(digest)).labels['second.label'], 'b');
});

test('a commit with the wrong digest fails and stores nothing', async () => {
  const blob = Buffer.from('these bytes');
  const wrong = sha256(Buffer.from('other bytes'));
  await assert.rejects(held.write('sgt-wrong', { digest: wrong, size: blob.length }, blob), (e: unknown) => isSgError(e) && e.code !== 'ALREADY_EXISTS');
  await assert.rejects(held.info(wrong), hasCode('NOT_FOUND'));
  await assert.rejects(held.write('sgt-long', { digest: sha256(blob), size: 3 }, blob), hasCode('INVALID_ARGUMENT'));
});

test('a stale ingest with the same ref is truncated and rewritten', async () => {
  const blob = randomBytes(3 << 20);
  const digest = sha256(blob);
  const ac = new AbortController();
  // Abort after the first pieces: the ingest keeps a partial write under the ref.
  async function* partial(): AsyncGenerator<Buffer> {
    yield blob.subarray(0, 1 << 20);
    ac.abort();
    yield blob.subarray(1 << 20, 2 << 20);
  }
  await assert.rejects(held.write('sgt-stale', { digest, size: blob.length }, partial(), {}, ac.signal), hasCode('ABORTED'));
  assert.deepEqual(await held.write('sgt-stale', { digest, size: blob.length }, blob), { written: true });
  assert.ok((await collect(held.read(digest))).equals(blob));
});

test('labels update by field: others stay, an empty value removes one', async () => {
  const blob = Buffer.from('labelled');
  const digest = sha256(blob);
  const content = held;
  await content.write('sgt-labels', { digest, size: blob.length }, blob, { keep: '1', drop: '2' });
  const info = await content.updateLabels(digest, { add: '3', drop: '' });
  assert.deepEqual(info.labels, { keep: '1', add: '3' });
});

test('a missing blob is NOT_FOUND with the digest in its context', async () => {
  const digest = sha256(Buffer.from('never written'));
  await assert.rejects(held.info(digest), (e: unknown) => isSgError(e, 'NOT_FOUND') && e.context.digest === digest && e.context.namespace === ctd.namespace);
  await assert.rejects(collect(held.read(digest)), hasCode('NOT_FOUND'));
});

test('images: create, get, put replaces, create twice is ALREADY_EXISTS, unknown is NOT_FOUND', async () => {
  const blob = Buffer.from('{"schemaVersion":2}');
  const digest = sha256(blob);
  await held.write('sgt-img', { digest, size: blob.length }, blob);
  const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: blob.length };
  const created = await client.images.create({ name: 'example.com/sgt/a:1', labels: { x: 'y' }, target });
  assert.deepEqual(created, { name: 'example.com/sgt/a:1', labels: { x: 'y' }, target });
  assert.deepEqual(await client.images.get('example.com/sgt/a:1'), created);
  await assert.rejects(client.images.create(created), hasCode('ALREADY_EXISTS'));
  const replaced = await client.images.put({ ...created, labels: {}, target: { ...target, annotations: { a: 'b' } } });
  assert.deepEqual(replaced.target.annotations, { a: 'b' });
  assert.deepEqual(replaced.labels, {});
  assert.match(await ctd.ctr(['images', 'ls', '-q']), /example\.com\/sgt\/a:1/);
  await assert.rejects(client.images.get('example.com/sgt/none:1'), hasCode('NOT_FOUND'));
});

test('an unreachable socket is UNAVAILABLE naming the address', async () => {
  const dead = connectContainerd(`${scratch}/no.sock`, 'default');
  try {
    await assert.rejects(dead.images.get('x'), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /^cannot reach containerd at /.test(e.message) && e.context.address === `${scratch}/no.sock`);
  } finally {
    dead.close();
  }
});
