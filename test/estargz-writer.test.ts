/**
 * Our writer: blobs it makes from the corpus inputs pass the Go reference reader (both
 * readers list them identically) and carry the same files as the reference's own blobs;
 * tar → writer → reader returns every file's bytes and metadata; output is deterministic;
 * the CLI fails cleanly on bad input.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { isSgError } from '../src/errors.js';
import { buildEstargz, cleanName, openEstargz, type BuildOptions } from '../src/estargz/index.js';
import { FileBlobSource } from '../src/source/file-source.js';
import { CORPUS_DIR, estargzRef, loadCorpus, readJsonl, refList } from './helpers/estargz-ref.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const corpus = loadCorpus();
const sha256 = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');
let dir = '';
const inputTar = (set: string) => join(dir, `${set}.tar`);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [CLI, 'estargz', ...args], { maxBuffer: 64 << 20 }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

/** The reference tool, or a skip that says why it could not be built. */
async function refOrSkip(t: TestContext): Promise<boolean> {
  try {
    await estargzRef();
    return true;
  } catch (err) {
    t.skip(`estargz-ref could not be built: ${String(err).split('\n')[0]}`);
    return false;
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estargz-writer-test-'));
  for (const [set, input] of Object.entries(corpus.inputs)) {
    const bytes = gunzipSync(readFileSync(join(CORPUS_DIR, input.file)));
    assert.equal(sha256(bytes), input.tarSha256);
    writeFileSync(inputTar(set), bytes);
  }
});
after(() => rm(dir, { recursive: true, force: true }));

/** Our blob for the same input and options as a corpus blob. */
async function ourBlobFor(name: string): Promise<{ path: string; opts: BuildOptions; result: Awaited<ReturnType<typeof buildEstargz>> }> {
  const b = corpus.blobs.find((x) => x.name === name)!;
  const opts: BuildOptions = { chunkSize: b.chunkSize, prioritizedFiles: b.prioritizedFiles, allowMissingPrioritized: b.allowPrioritizeNotFound };
  const path = join(dir, `${name}.ours`);
  const result = await buildEstargz(inputTar(b.input), path, opts);
  return { path, opts, result };
}

const validBlobs = corpus.blobs.filter((b) => b.listExitCode === 0);

describe('estargz writer → reference reader', () => {
  for (const b of validBlobs) {
    it(`${b.name}: estargz-ref lists our blob (exit 0), exactly as our reader does`, async (t) => {
      if (!(await refOrSkip(t))) return;
      const { path, result } = await ourBlobFor(b.name);
      const ref = await refList(path, result.tocDigest);
      assert.equal(ref.code, 0, JSON.stringify(ref.lines.at(-1)));
      const ours = await cli('list', path, '--toc-digest', result.tocDigest);
      assert.equal(ours.code, 0, ours.stderr);
      assert.deepEqual(lines(ours.stdout), ref.lines);
    });
  }

  it('a 4096-byte chunk size and prioritized files pass too', async (t) => {
    if (!(await refOrSkip(t))) return;
    for (const [set, prioritizedFiles] of [
      ['files', []],
      ['tree', ['./a/b/c/d/deep.txt', 'hard-chain', '/home/user/c.txt']],
      ['meta', ['long/hardlink-hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh']],
    ] as const) {
      const path = join(dir, `${set}-cs4096.ours`);
      const result = await buildEstargz(inputTar(set), path, { chunkSize: 4096, prioritizedFiles, allowMissingPrioritized: true });
      const ref = await refList(path, result.tocDigest);
      assert.equal(ref.code, 0, `${set}: ${JSON.stringify(ref.lines.at(-1))}`);
    }
  });
});

describe('estargz writer: same files as the reference writer', () => {
  for (const b of validBlobs) {
    it(`${b.name}: every entry equals the reference listing but for offsets and owner-name placement`, async () => {
      const { path } = await ourBlobFor(b.name);
      const ours = lines((await cli('list', path)).stdout);
      const expected = readJsonl(join(CORPUS_DIR, b.expected));
      assert.equal(ours.length, expected.length);
      const strip = (l: Record<string, unknown>) => {
        const { userName: _u, groupName: _g, ...rest } = l;
        if (l.kind === 'blob') return { numTocEntries: l.numTocEntries, numEntries: l.numEntries, tocVersion: l.tocVersion };
        return { ...rest, chunks: (l.chunks as Record<string, unknown>[]).map(({ offset: _o, nextOffset: _n, ...c }) => c) };
      };
      expected.forEach((want, i) => assert.deepEqual(strip(ours[i]!), strip(want), `line ${i}`));
    });
  }
});

describe('estargz round trip: tar → writer → reader', () => {
  for (const set of ['files', 'tree', 'meta', 'prio']) {
    it(`${set}: every file's bytes, mode, owner, time, xattrs and link target`, async () => {
      const blob = join(dir, `${set}-rt.ours`);
      const built = await buildEstargz(inputTar(set), blob, { chunkSize: 4096 });
      const esgz = await openEstargz(new FileBlobSource(blob), { tocDigest: built.tocDigest });
      const seen = new Map<string, { header: tar.Header; data: Buffer }>();
      const extract = tar.extract();
      extract.end(readFileSync(inputTar(set)));
      for await (const entry of extract) {
        const parts: Buffer[] = [];
        for await (const p of entry) parts.push(p as Buffer);
        seen.set(cleanName(entry.header.name), { header: entry.header, data: Buffer.concat(parts) });
      }
      let checked = 0;
      for (const [name, { header: h, data }] of seen) {
        if (name === 'stargz.index.json') {
          assert.equal(esgz.model.lookup(name), undefined, 'an input TOC is dropped');
          continue;
        }
        if (name === '.prefetch.landmark' || name === '.no.prefetch.landmark') {
          assert.equal(esgz.model.lookup(name)?.mode, name === '.no.prefetch.landmark' ? 0 : undefined, 'only our own landmark');
          continue;
        }
        const node = esgz.model.lookup(name);
        assert.ok(node, name);
        const type = { file: 'reg', link: 'reg', directory: 'dir', symlink: 'symlink', 'character-device': 'char', 'block-device': 'block', fifo: 'fifo' }[h.type as string];
        if (h.type !== 'link') {
          assert.equal(node.type, type, name);
          assert.equal(node.mode & 0o7777, h.mode & 0o7777, `${name} mode`);
          // tar-stream leaves PAX uid/gid/mtime in `pax`; apply them as any tar reader does.
          const pax = (h.pax ?? {}) as Record<string, string>;
          assert.equal(node.uid, Number(pax.uid ?? h.uid), name);
          assert.equal(node.gid, Number(pax.gid ?? h.gid), name);
          const sec = pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : Math.floor(h.mtime.getTime() / 1000);
          if (sec !== 0) assert.ok(Math.abs(node.mtime.sec - sec) <= 1, `${name} mtime`);
          for (const [k, v] of Object.entries(pax)) {
            if (k.startsWith('SCHILY.xattr.') && !v.includes('\ufffd')) assert.equal(node.xattrs.get(k.slice(13))?.toString('utf8'), v, `${name} ${k}`);
          }
        }
        if (h.type === 'symlink') assert.equal(node.linkName, h.linkname);
        if (h.type === 'link') assert.equal(node.id, esgz.model.lookup(h.linkname!)?.id, `${name} is a hardlink to ${h.linkname}`);
        if (h.type === 'file') assert.deepEqual(await esgz.readFile(name), data, `${name} bytes`);
        if (h.type === 'character-device' || h.type === 'block-device') assert.deepEqual([node.devMajor, node.devMinor], [h.devmajor, h.devminor]);
        checked++;
      }
      assert.ok(checked > 5);
    });
  }

  it('the binary xattr survives byte for byte', async () => {
    const blob = join(dir, 'meta-x.ours');
    await buildEstargz(inputTar('meta'), blob);
    const esgz = await openEstargz(new FileBlobSource(blob));
    assert.equal(esgz.model.lookup('xattr/binary')!.xattrs.get('user.bin')!.toString('base64'), 'gIGCg4SFhoeIiYqLjI2Oj/8AAQ==');
  });
});

describe('estargz writer: format details', () => {
  it('is deterministic, also from a gzip stream, and reports the right digests', async () => {
    const a = join(dir, 'det-a');
    const b = join(dir, 'det-b');
    const ra = await buildEstargz(inputTar('tree'), a, { chunkSize: 4096 });
    const rb = await buildEstargz(createReadStream(join(CORPUS_DIR, corpus.inputs.tree!.file)), b, { chunkSize: 4096, concurrency: 1 });
    const bytes = readFileSync(a);
    assert.deepEqual(readFileSync(b), bytes);
    assert.deepEqual(ra, rb);
    assert.equal(ra.blobDigest, sha256(bytes));
    assert.equal(ra.size, bytes.length);
    assert.equal(ra.diffID, sha256(gunzipSync(bytes)), 'diffID = sha256 of the blob inflated as one stream');
  });

  it('drops input landmarks and stargz.index.json, keeps the last duplicate at its place', async () => {
    const blob = join(dir, 'tree-dup');
    await buildEstargz(inputTar('tree'), blob);
    const toc = await (await openEstargz(new FileBlobSource(blob))).readToc();
    const names = toc.entries.map((e) => e.name);
    assert.equal(names[0], '.no.prefetch.landmark');
    assert.ok(!names.includes('.prefetch.landmark'));
    assert.ok(!names.includes('stargz.index.json'));
    assert.equal(names.filter((n) => n === 'dup.txt').length, 1);
    assert.equal(names.at(-1), 'dup.txt');
    assert.equal(toc.entries.at(-1)!.size, 22);
  });

  it('prioritized files come first with parents and hardlink targets, then .prefetch.landmark', async () => {
    const blob = join(dir, 'prio-order');
    const r = await buildEstargz(inputTar('prio'), blob, { prioritizedFiles: ['./usr/lib/libbar.so', 'nope'], allowMissingPrioritized: true });
    assert.deepEqual(r.missedPrioritizedFiles, ['nope']);
    const toc = await (await openEstargz(new FileBlobSource(blob))).readToc();
    assert.deepEqual(
      toc.entries.slice(0, 6).map((e) => e.name),
      ['usr', 'usr/lib', 'lib', 'lib/libfoo.so.1', 'usr/lib/libbar.so', '.prefetch.landmark'],
    );
    await assert.rejects(buildEstargz(inputTar('prio'), join(dir, 'prio-missing'), { prioritizedFiles: ['nope'] }), (err: unknown) => isSgError(err, 'INVALID_ARGUMENT'));
    assert.equal(existsSync(join(dir, 'prio-missing')), false, 'no partial output');
  });

  it('rejects tars that cannot make a valid eStargz, and removes the partial output', async () => {
    const pack = async (entries: [Parameters<tar.Pack['entry']>[0], string?][]) => {
      const p = tar.pack();
      for (const [h, body] of entries) p.entry(h, body ?? '');
      p.finalize();
      const parts: Buffer[] = [];
      for await (const c of p) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    const cases: [string, Buffer][] = [
      ['escaping name', await pack([[{ name: '../evil' }, 'x']])],
      ['hardlink to nothing', await pack([[{ name: 'h', type: 'link', linkname: 'missing' }]])],
      ['file as a parent', await pack([[{ name: 'a' }, 'x'], [{ name: 'a/b' }, 'y']])],
      ['truncated', (await pack([[{ name: 'big' }, 'z'.repeat(5000)]])).subarray(0, 3000)],
      ['not a tar', Buffer.from('this is not a tar archive at all'.repeat(40))],
    ];
    for (const [what, bytes] of cases) {
      const input = join(dir, 'bad.tar');
      const out = join(dir, 'bad.out');
      writeFileSync(input, bytes);
      await assert.rejects(buildEstargz(input, out), (err: unknown) => isSgError(err, 'INVALID_ARGUMENT'), what);
      assert.equal(existsSync(out), false, what);
    }
  });
});

describe('estargz CLI', () => {
  it('build prints one JSON line; verify checks every chunk', async () => {
    const out = join(dir, 'cli.blob');
    const r = await cli('build', inputTar('prio'), out, '--chunk-size', '4096', '--prioritized', 'bin/app', '--prioritized', 'etc/app.conf');
    assert.equal(r.code, 0, r.stderr);
    const line = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(line), ['tocDigest', 'diffID', 'blobDigest', 'size']);
    assert.equal(line.blobDigest, sha256(readFileSync(out)));
    const v = await cli('verify', out, '--toc-digest', line.tocDigest as string);
    assert.equal(v.code, 0, v.stderr);
    assert.equal((JSON.parse(v.stdout) as { chunks: number }).chunks > 10, true);
  });

  it('fails with one clear stderr line and no stack trace', async () => {
    const flipped = join(CORPUS_DIR, 'blobs/broken-chunk-flipped.estargz.tar.gz');
    const garbage = join(dir, 'garbage');
    writeFileSync(garbage, 'not an estargz blob at all, just some text that is long enough'.repeat(3));
    const cases: [string[], number, RegExp][] = [
      [['verify', flipped], 1, /chunk digest mismatch.*entry=opt\/data.*chunkOffset=8192/],
      [['verify', join(CORPUS_DIR, 'blobs/tree-cs4096.estargz.tar.gz'), '--toc-digest', 'sha256:' + 'a'.repeat(64)], 1, /TOC digest does not match/],
      [['verify', garbage], 1, /no eStargz footer/],
      [['list', garbage], 1, /footer/],
      [['list', join(dir, 'does-not-exist')], 1, /cannot stat/],
      [['build', garbage, join(dir, 'x.out')], 1, /tar/],
      [['build', inputTar('tree')], 2, /expected <in.tar> <out>/],
      [['verify', garbage, '--bogus'], 2, /bogus/],
      [['frobnicate'], 2, /unknown command/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.split('\n')[0]!, message, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('a reader that closes the pipe early (| head) ends the listing quietly', async () => {
    const blob = join(CORPUS_DIR, 'blobs/files-default.estargz.tar.gz');
    const script = `set -o pipefail; "$0" "$1" estargz list "$2" | head -c 100 >/dev/null`;
    const r = await promisify(execFile)('bash', ['-c', script, process.execPath, CLI, blob]).then(
      (x) => ({ code: 0, stderr: x.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });
});
