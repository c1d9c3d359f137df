/**
 * Our reader against blobs written by the Go reference (shared/testdata/estargz): the
 * `list` output must equal the reference listing line by line, and the broken blobs must
 * fail where the reference fails, without ever handing out unverified bytes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isSgError, SgError } from '../src/errors.js';
import { chunkRange, encodeFooter, LEGACY_FOOTER_SIZE, openEstargz, parseFooter } from '../src/estargz/index.js';
import { FileBlobSource } from '../src/source/file-source.js';
import { CORPUS_DIR, loadCorpus, MemoryBlobSource, readJsonl } from './helpers/estargz-ref.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const corpus = loadCorpus();
const sha256 = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const valid = corpus.blobs.filter((b) => b.listExitCode === 0);

async function cliList(blob: string, tocDigest?: string): Promise<{ code: number; lines: Record<string, unknown>[]; stderr: string }> {
  const args = [CLI, 'estargz', 'list', blob, ...(tocDigest ? ['--toc-digest', tocDigest] : [])];
  const r = await promisify(execFile)(process.execPath, args, { maxBuffer: 64 << 20 }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
  const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code: r.code, lines, stderr: r.stderr };
}

describe('estargz corpus: list equals the reference listing', () => {
  for (const b of corpus.blobs) {
    it(b.name, async () => {
      const { code, lines, stderr } = await cliList(join(CORPUS_DIR, b.blob), b.tocDigest);
      const expected = readJsonl(join(CORPUS_DIR, b.expected));
      assert.equal(code, b.listExitCode, stderr);
      assert.equal(lines.length, expected.length);
      expected.forEach((want, i) => {
        const got = { ...lines[i] };
        const exp = { ...want };
        if (exp.kind === 'error') {
          // The message is Go's error text; stage, entry and chunk are what must agree.
          delete exp.message;
          delete got.message;
          assert.ok(typeof lines[i]!.message === 'string' && lines[i]!.message !== '');
        }
        assert.deepEqual(got, exp, `line ${i} of ${b.name}`);
      });
      if (code !== 0) assert.equal(stderr.trim().split('\n').length, 1, 'one stderr line');
    });
  }
});

describe('estargz corpus: reader library', () => {
  for (const b of valid) {
    it(`${b.name}: TOC digest, files and model`, async () => {
      const esgz = await openEstargz(new FileBlobSource(join(CORPUS_DIR, b.blob)), { tocDigest: b.tocDigest });
      assert.equal(esgz.tocDigest, b.tocDigest);
      const expected = readJsonl(join(CORPUS_DIR, b.expected)).filter((l) => l.kind === 'entry');
      for (const want of expected) {
        const node = esgz.model.lookup(want.tocName as string);
        assert.ok(node, `lookup ${String(want.tocName)}`);
        assert.equal(node.numLink, want.numLink, `numLink of ${String(want.name)}`);
        if (want.sha256 !== null) assert.equal(sha256(await esgz.readFile(want.name as string)), want.sha256);
      }
      assert.equal(esgz.model.root.id, 1);
      const nodes = [...esgz.model.nodes()];
      assert.equal(nodes.length, esgz.model.nodeCount);
      nodes.forEach((n, i) => {
        assert.equal(n.id, i + 1);
        assert.equal(esgz.model.lookup(n.name)?.id, n.id, `lookup of ${n.name} by its own name`);
      });
    });
  }

  it('the TOC bytes are exactly the stored JSON', async () => {
    for (const b of valid) {
      const json = readFileSync(join(CORPUS_DIR, `expected/${b.name}.toc.json`));
      assert.equal(sha256(json), b.tocDigest);
    }
  });

  it('a wrong expected TOC digest is TOC_DIGEST_MISMATCH', async () => {
    const b = valid[0]!;
    const wrong = 'sha256:' + '0'.repeat(64);
    await assert.rejects(openEstargz(new FileBlobSource(join(CORPUS_DIR, b.blob)), { tocDigest: wrong }), (err: unknown) => {
      assert.ok(isSgError(err, 'TOC_DIGEST_MISMATCH'));
      assert.equal(err.context.expected, wrong);
      assert.equal(err.context.actual, b.tocDigest);
      return true;
    });
  });

  it('broken-truncated-footer fails at the footer with NOT_ESTARGZ', async () => {
    const b = corpus.blobs.find((x) => x.name === 'broken-truncated-footer')!;
    await assert.rejects(openEstargz(new FileBlobSource(join(CORPUS_DIR, b.blob))), (err: unknown) => isSgError(err, 'NOT_ESTARGZ'));
  });

  it('broken-chunk-flipped: CORRUPT for opt/data at 8192, never the unverified bytes', async () => {
    const b = corpus.blobs.find((x) => x.name === 'broken-chunk-flipped')!;
    const esgz = await openEstargz(new FileBlobSource(join(CORPUS_DIR, b.blob)), { tocDigest: b.tocDigest });
    await assert.rejects(esgz.readFile('opt/data'), (err: unknown) => {
      assert.ok(err instanceof SgError && err.code === 'CORRUPT', String(err));
      assert.equal(err.context.entry, 'opt/data');
      assert.equal(err.context.chunkOffset, 8192);
      return true;
    });
    // Chunk by chunk: the good ones are served, the flipped one never is.
    const node = esgz.model.lookup('opt/data')!;
    const served: Buffer[] = [];
    for (const c of node.chunks) {
      try {
        served.push(await esgz.readChunk(c, node.name));
      } catch (err) {
        assert.ok(isSgError(err, 'CORRUPT'));
        assert.equal(c.chunkOffset, 8192);
        continue;
      }
      assert.equal(sha256(served.at(-1)!), c.digest);
    }
    assert.equal(served.length, node.chunks.length - 1);
    assert.notEqual(sha256(Buffer.concat(served)), b.expectedFailure!.unverifiedFileSha256);
  });

  it('reads only the chunk range, never the TOC or the footer', async () => {
    const b = corpus.blobs.find((x) => x.name === 'tree-cs4096')!;
    const bytes = readFileSync(join(CORPUS_DIR, b.blob));
    const src = new MemoryBlobSource(bytes);
    const esgz = await openEstargz(src);
    const node = esgz.model.lookup('dup.txt')!; // the last file before the TOC
    const c = node.chunks[0]!;
    assert.equal(c.nextOffset, bytes.length, 'Go reports the blob size');
    assert.deepEqual(chunkRange(c), { offset: c.offset, length: esgz.footer.tocOffset - c.offset });
    const before = src.reads.bytes;
    await esgz.readFile('dup.txt');
    assert.equal(src.reads.bytes - before, esgz.footer.tocOffset - c.offset);
  });
});

describe('estargz footer', () => {
  it('encodes the same 51 bytes as the Go writer and parses them back', () => {
    for (const b of valid) {
      const bytes = readFileSync(join(CORPUS_DIR, b.blob));
      const footer = parseFooter(bytes.subarray(bytes.length - 51));
      assert.equal(footer.footerSize, 51);
      assert.deepEqual(encodeFooter(footer.tocOffset), bytes.subarray(bytes.length - 51));
    }
  });

  it('reads a blob with the legacy 47-byte stargz footer', async () => {
    const b = corpus.blobs.find((x) => x.name === 'tree-cs4096')!;
    const bytes = readFileSync(join(CORPUS_DIR, b.blob));
    const { tocOffset } = parseFooter(bytes.subarray(bytes.length - 51));
    const legacy = Buffer.alloc(LEGACY_FOOTER_SIZE);
    legacy.set([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0], 0);
    legacy.write(tocOffset.toString(16).padStart(16, '0') + 'STARGZ', 12, 'latin1');
    legacy.set([0x01, 0x00, 0x00, 0xff, 0xff], 34);
    const blob = Buffer.concat([bytes.subarray(0, bytes.length - 51), legacy]);
    const esgz = await openEstargz(new MemoryBlobSource(blob), { tocDigest: b.tocDigest });
    assert.equal(esgz.footer.footerSize, LEGACY_FOOTER_SIZE);
    assert.equal(esgz.footer.tocOffset, tocOffset);
    assert.equal(sha256(await esgz.readFile('bigfile')), 'sha256:b0bf7cca8fbc90c72a279d40e14683a90a88f487865d2bf4c7557fe8b90d1e18');
  });

  it('rejects what is not a footer with NOT_ESTARGZ', () => {
    const good = encodeFooter(1234);
    const cases: Buffer[] = [Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(51), good.subarray(1)];
    for (const [at, value] of [[0, 0], [3, 0], [3, 0x0c], [10, 25], [12, 0x41], [14, 21], [16, 0x67], [37, 0x41]] as const) {
      const bad = Buffer.from(good);
      bad[at] = value;
      cases.push(bad);
    }
    const huge = Buffer.from(good);
    huge.write('ffffffffffffffff', 16, 'latin1');
    cases.push(huge);
    for (const c of cases) assert.throws(() => parseFooter(c), (err: unknown) => isSgError(err, 'NOT_ESTARGZ'), c.toString('hex'));
    assert.equal(parseFooter(good).tocOffset, 1234);
  });
});
