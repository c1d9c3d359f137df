/**
 * TOC checks (one test per hostile-TOC rule) and the layer model built from a TOC.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { isSgError, type ErrorCode } from '../src/errors.js';
import { openEstargz } from '../src/estargz/index.js';
import { buildModel } from '../src/estargz/model.js';
import { TOC_TAR_NAME } from '../src/estargz/names.js';
import { encodeFileHeader } from '../src/estargz/tar.js';
import { decodeToc, type Toc, type TocEntry } from '../src/estargz/toc.js';
import { TocStream } from '../src/estargz/toc-stream.js';
import { FileBlobSource } from '../src/source/file-source.js';
import { assembleBlob, CORPUS_DIR, MemoryBlobSource } from './helpers/estargz-ref.js';

const D1 = 'sha256:' + '1'.repeat(64);
const D2 = 'sha256:' + '2'.repeat(64);
const BOUNDS = { blobSize: 100_000, tocOffset: 90_000, maxEntries: 1000 };
type Raw = Record<string, unknown>;

const file = (name: string, extra: Raw = {}): Raw => ({ name, type: 'reg', size: 10, offset: 100, digest: D1, chunkDigest: D1, ...extra });
const load = (entries: unknown[], bounds = BOUNDS) => buildModel(decodeToc({ version: 1, entries }, bounds));

function rejects(entries: unknown[], code: ErrorCode, entry: string | undefined, why: RegExp, bounds = BOUNDS): void {
  assert.throws(
    () => load(entries, bounds),
    (err: unknown) => {
      assert.ok(isSgError(err, code), `expected ${code}, got ${String(err)}`);
      assert.match(err.message, why);
      if (entry !== undefined) assert.equal(err.context.entry, entry);
      return true;
    },
  );
}

describe('estargz TOC: hostile TOCs are rejected, naming the entry', () => {
  it('accepts a sane TOC (baseline for the cases below)', () => {
    const m = load([{ name: 'a/', type: 'dir' }, file('a/f'), { name: 'a/h', type: 'hardlink', linkName: 'a/f' }]);
    assert.equal(m.lookup('a/h')!.id, m.lookup('a/f')!.id);
  });

  it('a name that climbs above the root', () => {
    rejects([file('../etc/passwd')], 'HOSTILE_TOC', '../etc/passwd', /escapes the root/);
    rejects([file('a/../../x')], 'HOSTILE_TOC', 'a/../../x', /escapes the root/);
  });

  it('absolute and dotted names are normalised, not rejected', () => {
    const m = load([file('/etc/passwd'), file('./a/./b/../c', { offset: 200 })]);
    assert.equal(m.lookup('etc/passwd')?.name, 'etc/passwd');
    assert.equal(m.lookup('a/c')?.name, 'a/c');
  });

  it('duplicate names (after normalisation)', () => {
    rejects([file('a'), file('./a', { offset: 200 })], 'HOSTILE_TOC', 'a', /duplicate/);
    rejects([{ name: './', type: 'dir' }, { name: '/', type: 'dir' }], 'HOSTILE_TOC', '', /duplicate/);
  });

  it('chunk offsets outside the blob', () => {
    rejects([file('f', { offset: 90_000 })], 'HOSTILE_TOC', undefined, /not before the TOC/);
    rejects([file('f', { offset: 2 ** 52 })], 'HOSTILE_TOC', undefined, /not before the TOC/);
  });

  it('overlapping or non-monotonic chunks', () => {
    rejects([file('f', { offset: 500 }), file('g', { offset: 500 })], 'HOSTILE_TOC', undefined, /not increasing/);
    rejects([file('f', { offset: 500 }), file('g', { offset: 400 })], 'HOSTILE_TOC', undefined, /not increasing/);
    rejects(
      [file('f', { offset: 500, size: 100, chunkDigest: D1 }), file('g', { offset: 500, innerOffset: 50 })],
      'HOSTILE_TOC',
      undefined,
      /overlaps the previous chunk/,
    );
  });

  it('chunk sizes that do not add up to the file size', () => {
    const big = { size: 100, chunkSize: 40, offset: 100 };
    rejects([file('f', big), { name: 'f', type: 'chunk', offset: 200, chunkOffset: 40, chunkSize: 40, chunkDigest: D2 }], 'HOSTILE_TOC', 'f', /do not add up/);
    rejects([file('f', { ...big, chunkSize: 200 })], 'HOSTILE_TOC', 'f', /past the end of the file/);
    rejects([file('f', big), { name: 'f', type: 'chunk', offset: 200, chunkOffset: 50, chunkDigest: D2 }], 'HOSTILE_TOC', 'f', /does not start where/);
    rejects([file('f', { chunkOffset: 3 })], 'HOSTILE_TOC', 'f', /does not start where/);
    rejects([file('f', { size: 0 }), { name: 'f', type: 'chunk', offset: 200, chunkDigest: D2 }], 'HOSTILE_TOC', 'f', /without a regular file/);
  });

  it('negative, fractional, absurd or mistyped values', () => {
    rejects([file('f', { size: -1 })], 'HOSTILE_TOC', 'f', /size/);
    rejects([file('f', { size: 1.5 })], 'HOSTILE_TOC', 'f', /size/);
    rejects([file('f', { size: 2 ** 60 })], 'HOSTILE_TOC', 'f', /size/);
    rejects([file('f', { uid: 2 ** 40 })], 'HOSTILE_TOC', 'f', /uid/);
    rejects([file('f', { mode: '0644' })], 'HOSTILE_TOC', 'f', /mode/);
    rejects([file('f', { linkName: 7 })], 'HOSTILE_TOC', 'f', /linkName/);
    rejects([file('f', { xattrs: { 'user.a': 'not base64!' } })], 'HOSTILE_TOC', 'f', /base64/);
    rejects([file('f', { digest: 'md5:abc' })], 'HOSTILE_TOC', 'f', /digest/);
    rejects([file('f\0x')], 'HOSTILE_TOC', undefined, /NUL/);
    rejects(['not an object'], 'HOSTILE_TOC', undefined, /not an object/);
  });

  it('a chunk larger than its compressed range could inflate to', () => {
    rejects([file('f', { offset: 89_999, size: 2000 })], 'HOSTILE_TOC', undefined, /larger than its compressed range/);
  });

  it('file data without an offset or a digest', () => {
    rejects([file('f', { offset: 0 })], 'HOSTILE_TOC', 'f', /without an offset/);
    rejects(
      [file('f', { size: 20, chunkSize: 10, chunkDigest: undefined }), { name: 'f', type: 'chunk', offset: 200, chunkOffset: 10, chunkDigest: D2 }],
      'HOSTILE_TOC',
      'f',
      /no digest/,
    );
    // A one-chunk file may be verified against its file digest alone.
    assert.equal(load([file('f', { chunkDigest: undefined })]).lookup('f')!.chunks[0]!.digest, D1);
  });

  it('hardlinks to missing targets, to directories, and in cycles', () => {
    rejects([{ name: 'h', type: 'hardlink', linkName: 'nope' }], 'HOSTILE_TOC', 'h', /does not exist/);
    rejects([{ name: 'd', type: 'dir' }, { name: 'h', type: 'hardlink', linkName: 'd/' }], 'HOSTILE_TOC', 'h', /directory/);
    rejects(
      [
        { name: 'x', type: 'hardlink', linkName: 'y' },
        { name: 'y', type: 'hardlink', linkName: 'x' },
      ],
      'HOSTILE_TOC',
      'x',
      /cycle/,
    );
    rejects([{ name: 's', type: 'hardlink', linkName: 's' }], 'HOSTILE_TOC', 's', /cycle/);
    rejects([file('f'), { name: 'h', type: 'hardlink', linkName: '../../f' }], 'HOSTILE_TOC', 'h', /escapes/);
    rejects([{ name: 'l', type: 'symlink' }], 'HOSTILE_TOC', 'l', /without a target/);
  });

  it('unknown types, a non-directory root or parent, a bad version', () => {
    rejects([{ name: 'sock', type: 'socket' }], 'HOSTILE_TOC', undefined, /unknown entry type/);
    rejects([file('./')], 'HOSTILE_TOC', '', /root entry is not a directory/);
    rejects([file('a'), file('a/b', { offset: 200 })], 'HOSTILE_TOC', 'a', /parent is not a directory/);
    rejects([file('a'), { name: 'h', type: 'hardlink', linkName: 'a' }, { name: 'h/x', type: 'fifo' }], 'HOSTILE_TOC', 'h', /parent/);
    assert.throws(() => decodeToc({ version: 2, entries: [] }, BOUNDS), (err: unknown) => isSgError(err, 'HOSTILE_TOC'));
    assert.throws(() => decodeToc({ version: 1, entries: {} }, BOUNDS), (err: unknown) => isSgError(err, 'HOSTILE_TOC'));
    assert.throws(() => decodeToc([], BOUNDS), (err: unknown) => isSgError(err, 'HOSTILE_TOC'));
  });

  it('more entries than allowed is TOO_LARGE', () => {
    const entries = Array.from({ length: 11 }, (_, i) => ({ name: `d${i}`, type: 'dir' }));
    rejects(entries, 'TOO_LARGE', undefined, /too many entries/, { ...BOUNDS, maxEntries: 10 });
  });

  it('a TOC over the byte bound is TOO_LARGE, also as a gzip bomb', async () => {
    const json = Buffer.from(JSON.stringify({ version: 1, entries: [{ name: 'x'.repeat(5000), type: 'dir' }] }));
    await assert.rejects(openEstargz(new MemoryBlobSource(assembleBlob(Buffer.alloc(0), json)), { maxTocBytes: 4096 }), (err: unknown) =>
      isSgError(err, 'TOO_LARGE'),
    );
    // TOC members that would inflate to 1 GiB: stopped at the tar header's size, not inflated.
    const zeros = gzipSync(Buffer.alloc(16 << 20), { level: 9 });
    const gib = Array<Buffer>(64).fill(zeros);
    const footer0 = Buffer.from(assembleBlob(Buffer.alloc(0), Buffer.from('{}')).subarray(-51));
    footer0.write('0'.repeat(16), 16, 'latin1'); // TOC at offset 0
    const header = (size: number) => gzipSync(encodeFileHeader(TOC_TAR_NAME, size));
    for (const [blob, code] of [
      [Buffer.concat([header(1 << 30), ...gib, footer0]), 'TOO_LARGE'],
      [Buffer.concat([header(100 << 10), ...gib, footer0]), 'CORRUPT'],
    ] as const) {
      const t0 = performance.now();
      await assert.rejects(openEstargz(new MemoryBlobSource(blob), { maxTocBytes: 1 << 20 }), (err: unknown) => isSgError(err, code));
      assert.ok(performance.now() - t0 < 1000, 'stopped early');
    }
  });

  it('a TOC that is not gzip, not a tar or not JSON is CORRUPT', async () => {
    const footer = assembleBlob(Buffer.alloc(0), Buffer.from('{}')).subarray(-51);
    const cases = [
      Buffer.concat([Buffer.from('plain bytes, not gzip'), footer]),
      Buffer.concat([gzipSync(Buffer.alloc(1024)), footer]),
      Buffer.concat([gzipSync(Buffer.from('x'.repeat(600))), footer]),
      assembleBlob(Buffer.alloc(0), Buffer.from('{"version": 1, "entries": [')),
    ];
    for (const blob of cases) {
      blob.write('0'.repeat(16), blob.length - 51 + 16, 'latin1');
      await assert.rejects(openEstargz(new MemoryBlobSource(blob)), (err: unknown) => isSgError(err, 'CORRUPT'));
    }
  });
});

describe('estargz TOC read as it is inflated', () => {
  /** What TocStream makes of `text` pushed in pieces of the given sizes, next to decodeToc(JSON.parse(text)). */
  const both = (text: string, sizes: readonly number[]) => {
    const outcome = (f: () => Toc) => {
      try {
        const toc = f();
        return { entries: toc.entries.map((e) => ({ ...e, xattrs: [...e.xattrs] })), numTocEntries: toc.numTocEntries, chunks: toc.chunks.count };
      } catch (err) {
        return err instanceof SyntaxError ? 'not JSON' : isSgError(err) ? `${err.code} ${err.message} ${JSON.stringify(err.context)}` : err;
      }
    };
    const whole = outcome(() => decodeToc(JSON.parse(text), BOUNDS));
    const streamed = outcome(() => {
      const entries: TocEntry[] = [];
      const stream = new TocStream(BOUNDS, () => {
        entries.length = 0;
        return (e) => entries.push(e);
      });
      const bytes = Buffer.from(text);
      for (let at = 0, k = 0; at < bytes.length; at += sizes[k++ % sizes.length]!) stream.push(bytes.subarray(at, at + sizes[k % sizes.length]!));
      return { version: 1, ...stream.finish(), entries };
    });
    return { whole, streamed };
  };
  const good = JSON.stringify({ version: 1, entries: [{ name: 'a/', type: 'dir' }, file('a/f', { name: 'a/"f]}' }), { name: 'a/h', type: 'hardlink', linkName: 'a/"f]}' }] }, null, '\t');
  const E = JSON.stringify([file('x\u00e9\ud800')]);

  it('gives what JSON.parse of the whole text gives, however the text is cut', () => {
    for (const sizes of [[1], [2, 3], [7], [64], [1 << 20]]) {
      const { whole, streamed } = both(good, sizes);
      assert.deepEqual(streamed, whole, `pieces of ${sizes.join(',')}`);
      assert.equal(typeof whole, 'object');
    }
  });

  it('rejects the same texts, keeps the last of repeated members, and checks the TOC object first', () => {
    const texts = [
      `{"entries":${E},"version":1}`,
      `{"version":2,"entries":${E},"version":1}`,
      `{"version":1,"entries":[{"name":"x","type":"bogus"}],"entries":${E}}`,
      `{"version":1,"entries":${E},"entries":[{"name":"x","type":"bogus"}]}`,
      `{"version":1,"entries":${E},"entries":null}`,
      `{"\\u0065ntries":${E},"version":1}`,
      `{"version":2,"entries":[{"name":"x","type":"bogus"}]}`,
      `{"version":1,"entries":[{"name":"x","type":"bogus"}${',{}'.repeat(1000)}]}`,
      `[1]`,
      `\ufeff{"version":1,"entries":[]}`,
      `{"version":1,"entries":[]} x`,
      `{"version":1,"entries":[{}{}]}`,
      `{"version":1,"entries":[,]}`,
      `{"version":1,"entries":[],}`,
      `{"version":1 "entries":[]}`,
      `{"version":1,"entries":[tru]}`,
      `{"version":1,"entries":[{"name":"x","type":"bogus"}],"x":[}`,
      `{"version":1,"entries":[`,
      ``,
    ];
    for (const text of texts) {
      for (const sizes of [[1], [5], [1 << 20]]) {
        const { whole, streamed } = both(text, sizes);
        assert.deepEqual(streamed, whole, `${text.slice(0, 80)} in pieces of ${sizes.join(',')}`);
      }
    }
  });
});

describe('estargz TOC: innerOffset (several chunks in one gzip member)', () => {
  it('reads a chunk that starts inside a member', async () => {
    const a = Buffer.from('first file data');
    const b = Buffer.from('second file, same gzip member');
    const member = gzipSync(Buffer.concat([a, Buffer.alloc(512 - a.length), Buffer.alloc(512, 7), b]));
    const payload = Buffer.concat([gzipSync(Buffer.alloc(512)), member]);
    const off = payload.length - member.length;
    const d = (x: Buffer) => 'sha256:' + createHash('sha256').update(x).digest('hex');
    const entries = [
      { name: 'a', type: 'reg', size: a.length, offset: off, digest: d(a), chunkDigest: d(a) },
      { name: 'b', type: 'reg', size: b.length, offset: off, innerOffset: 1024, digest: d(b), chunkDigest: d(b) },
    ];
    const esgz = await openEstargz(new MemoryBlobSource(assembleBlob(payload, Buffer.from(JSON.stringify({ version: 1, entries })))));
    assert.deepEqual(await esgz.readFile('a'), a);
    assert.deepEqual(await esgz.readFile('b'), b);
  });
});

describe('estargz model', () => {
  const open = (name: string) => openEstargz(new FileBlobSource(join(CORPUS_DIR, `blobs/${name}.estargz.tar.gz`)));

  it('synthesises implicit parents (0755, owner 0) and counts links like the Go reader', async () => {
    const { model } = await open('tree-cs4096');
    const implicit = model.lookup('implicit/x')!;
    assert.equal(implicit.implicit, true);
    assert.equal(implicit.type, 'dir');
    assert.equal(implicit.mode, 0o755);
    assert.equal(implicit.uid, 0);
    assert.deepEqual(implicit.mtime, { sec: 0, nsec: 0 });
    assert.equal(model.lookup('implicit')!.numLink, 3);
    assert.equal(model.root.implicit, false);
    assert.equal(model.root.numLink, 7, 'explicit root: 1 + subdirectories');
  });

  it('gives all names of a hardlinked file one node', async () => {
    const { model } = await open('tree-cs4096');
    const f1 = model.lookup('a/f1.txt')!;
    assert.equal(model.lookup('a/hard1')!.id, f1.id);
    assert.equal(model.lookup('./hard-chain')!.id, f1.id);
    assert.equal(model.lookup('a/hard1')!.name, 'a/f1.txt');
    assert.equal(f1.numLink, 3);
    assert.equal(model.lookup('a')!.child('hard1')!.id, f1.id);
    assert.equal([...model.nodes()].filter((n) => n.id === f1.id).length, 1);
  });

  it('numbers nodes depth-first from 1, children in name order', async () => {
    const { model } = await open('tree-cs4096');
    assert.equal(model.root.id, 1);
    const a = model.lookup('a')!;
    const names = [...model.root.children()].map(([name]) => name);
    assert.deepEqual(names, [...names].sort(), 'children come in name order');
    assert.equal(model.root.child(names[0]!)!.id, 2);
    assert.equal(model.lookup('a/b')!.id, a.id + 1);
    assert.equal(model.lookup('a/b/c')!.id, a.id + 2);
  });

  it('recognises whiteouts, opaque markers and landmarks', async () => {
    const meta = await open('meta-default');
    assert.equal(meta.model.lookup('wh/.wh.foo')!.role, 'whiteout');
    assert.equal(meta.model.lookup('wh/opq/.wh..wh..opq')!.role, 'opaque-marker');
    assert.equal(meta.model.lookup('wh/opq')!.opaque, true);
    assert.equal(meta.model.lookup('wh')!.opaque, false);
    assert.equal(meta.model.noPrefetch, true);
    assert.equal(meta.model.lookup('.no.prefetch.landmark')!.role, 'no-prefetch-landmark');
    const prio = await open('prio-default');
    assert.equal(prio.model.noPrefetch, false);
    assert.equal(prio.model.prefetchEnd, prio.model.lookup('.prefetch.landmark')!.chunks[0]!.offset);
  });

  it('carries owner names forward per id and parses mtimes', async () => {
    const { model } = await open('tree-cs4096');
    const a = model.lookup('home/user/a.txt')!;
    assert.equal(a.userName, 'user');
    assert.equal(a.groupName, 'staff');
    assert.equal(model.lookup('home/user/c.txt')!.groupName, 'users');
    assert.equal(model.lookup('dev/sda')!.devMajor, 8);
    assert.deepEqual(model.lookup('mtime-2038')!.mtime, { sec: Date.UTC(2100, 0, 1) / 1000, nsec: 0 });
    assert.equal(model.lookup('a/b/rel-link')!.linkName, '../f1.txt');
  });

  it('keeps binary xattrs as bytes', async () => {
    const { model } = await open('meta-default');
    const x = model.lookup('xattr/binary')!.xattrs.get('user.bin')!;
    assert.equal(x.toString('base64'), 'gIGCg4SFhoeIiYqLjI2Oj/8AAQ==');
    assert.equal(model.lookup('xattr/user')!.xattrs.get('user.empty')!.length, 0);
  });

  it('scales: 100k entries parse, check and model in well under the bench bound', () => {
    const entries: Raw[] = [];
    for (let i = 0; i < 1000; i++) {
      entries.push({ name: `d${i}/`, type: 'dir', mode: 0o755 });
      for (let j = 0; j < 99; j++) entries.push(file(`d${i}/f${j}`, { offset: 100 + (i * 99 + j) * 10, size: 1 }));
    }
    const json = JSON.stringify({ version: 1, entries });
    const t0 = performance.now();
    const m = buildModel(decodeToc(JSON.parse(json), { blobSize: 2e6, tocOffset: 1.9e6, maxEntries: 1e6 }));
    const ms = performance.now() - t0;
    assert.equal(m.nodeCount, 100_001);
    assert.ok(ms < 3000, `${ms} ms`);
  });
});
