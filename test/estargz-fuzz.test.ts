/**
 * Mutation fuzzing of the reader: footer, TOC member, TOC JSON (hostile field values,
 * dropped, duplicated, reordered entries), truncation and byte flips. Each case must end
 * in a correct read or a typed SgError: no other exception, no hang, and never bytes that
 * differ from the file's real content. Seeded, so every run tries the same cases.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { SgError, type ErrorCode } from '../src/errors.js';
import { buildEstargz, openEstargz, parseFooter, type Estargz } from '../src/estargz/index.js';
import { assembleBlob, CORPUS_DIR, MemoryBlobSource } from './helpers/estargz-ref.js';

const CASES = 10_400;
const CASE_TIMEOUT_MS = 5000;
const OPEN_CODES: ReadonlySet<ErrorCode> = new Set(['NOT_ESTARGZ', 'CORRUPT', 'HOSTILE_TOC', 'TOO_LARGE', 'TOC_DIGEST_MISMATCH']);

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha256 = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');

interface Base {
  name: string;
  blob: Buffer;
  tocDigest: string;
  payload: Buffer;
  tocOffset: number;
  toc: { version: number; entries: Record<string, unknown>[] };
  /** Real content of every regular file, by clean name. */
  files: Map<string, Buffer>;
}

async function makeBase(name: string, blob: Buffer): Promise<Base> {
  const esgz = await openEstargz(new MemoryBlobSource(blob));
  const { tocOffset } = parseFooter(blob.subarray(-51));
  const tocTar = gunzipSync(blob.subarray(tocOffset, blob.length - 51));
  const json = tocTar.subarray(512, 512 + Number.parseInt(tocTar.toString('latin1', 124, 135), 8));
  const files = new Map<string, Buffer>();
  for (const n of esgz.model.nodes()) if (n.type === 'reg') files.set(n.name, await esgz.readFile(n.name));
  return { name, blob, tocDigest: esgz.tocDigest, payload: blob.subarray(0, tocOffset), tocOffset, toc: JSON.parse(json.toString('utf8')), files };
}

/** A small layer with every kind of entry and 64-byte chunks, made by our writer. */
async function syntheticBlob(dir: string): Promise<Buffer> {
  // tar-stream stamps entries without mtime with the current time: fix it so every run
  // fuzzes the same bytes.
  const pack = tar.pack();
  const mtime = new Date('2024-01-01T00:00:00Z');
  const rnd = prng(7);
  const noise = Buffer.from(Array.from({ length: 300 }, () => Math.floor(rnd() * 256)));
  pack.entry({ name: 'd/', mtime, type: 'directory', mode: 0o755 });
  pack.entry({ name: 'd/small', mtime, mode: 0o644, uid: 1000, gid: 1000, uname: 'u', gname: 'g' }, 'hello, small file\n');
  pack.entry({ name: 'd/chunked', mtime, mode: 0o600, pax: { 'SCHILY.xattr.user.k': 'v' } }, noise);
  pack.entry({ name: 'd/e/f', mtime, mode: 0o644 }, 'implicit parents above me');
  pack.entry({ name: 'empty', mtime, mode: 0o644 }, '');
  pack.entry({ name: 'link', mtime, type: 'symlink', linkname: 'd/small' });
  pack.entry({ name: 'hard', mtime, type: 'link', linkname: 'd/chunked' });
  pack.entry({ name: 'd/.wh.gone', mtime, mode: 0 }, '');
  pack.entry({ name: 'dev', mtime, type: 'character-device', devmajor: 1, devminor: 3 });
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  const input = join(dir, 'in.tar');
  const out = join(dir, 'out.blob');
  writeFileSync(input, Buffer.concat(parts));
  await buildEstargz(input, out, { chunkSize: 64, level: 6 });
  return readFileSync(out);
}

const HOSTILE_VALUES: unknown[] = [
  -1, 1.5, 2 ** 53, 2 ** 32, 1e300, 0, 1, 7, 4096, '', 'x', null, true, [], {}, { a: 1 },
  '../../etc/passwd', '/abs/olute', './', '..', 'a'.repeat(300), 'sha256:' + 'f'.repeat(64), 'sha256:xyz',
  'dir', 'reg', 'chunk', 'hardlink', 'symlink', 'socket',
];
const FIELDS = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest'];

type Mutation = { blob: Buffer; tocDigest?: string; kind: string };

function mutate(base: Base, r: () => number): Mutation {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (n: number) => Math.floor(r() * n);
  const flip = (b: Buffer, from: number, to: number, times: number) => {
    const out = Buffer.from(b);
    for (let i = 0; i < times && to > from; i++) {
      const at = from + int(to - from);
      out[at] = out[at]! ^ (1 + int(255));
    }
    return out;
  };
  const withToc = (entries: unknown[], version: unknown = 1) =>
    assembleBlob(base.payload, Buffer.from(JSON.stringify({ version, entries }, null, '\t')));
  const len = base.blob.length;
  switch (int(8)) {
    case 0:
      return { kind: 'flip anywhere', blob: flip(base.blob, 0, len, 1 + int(3)), tocDigest: base.tocDigest };
    case 1:
      return { kind: 'flip footer', blob: flip(base.blob, len - 51, len, 1 + int(2)) };
    case 2:
      return { kind: 'flip TOC member', blob: flip(base.blob, base.tocOffset, len - 51, 1 + int(4)) };
    case 3: {
      const cut = int(len);
      return { kind: 'truncate', blob: r() < 0.5 ? base.blob.subarray(0, cut) : Buffer.concat([base.blob.subarray(0, cut), base.blob.subarray(len - 51)]) };
    }
    case 4: {
      const json = Buffer.from(JSON.stringify(base.toc, null, '\t'));
      const at = int(json.length);
      const edit = pick(['flip', 'cut', 'insert'] as const);
      const text =
        edit === 'flip' ? flip(json, at, at + 1, 1) : edit === 'cut' ? Buffer.concat([json.subarray(0, at), json.subarray(at + 1 + int(40))]) : Buffer.concat([json.subarray(0, at), Buffer.from(pick(['{', '}', '"', ',', '9', '-', ']', 'null'])), json.subarray(at)]);
      return { kind: `JSON text ${edit}`, blob: assembleBlob(base.payload, text) };
    }
    case 5: {
      const entries = structuredClone(base.toc.entries);
      const i = int(entries.length);
      const j = int(entries.length);
      const op = pick(['drop', 'duplicate', 'swap', 'version'] as const);
      if (op === 'drop') entries.splice(i, 1);
      if (op === 'duplicate') entries.splice(j, 0, structuredClone(entries[i]!));
      if (op === 'swap') [entries[i], entries[j]] = [entries[j]!, entries[i]!];
      // Half the time the caller expects the original TOC digest: an edited TOC must then fail.
      const tocDigest = r() < 0.5 ? base.tocDigest : undefined;
      return { kind: `entries ${op}`, blob: withToc(entries, op === 'version' ? pick(HOSTILE_VALUES) : 1), ...(tocDigest ? { tocDigest } : {}) };
    }
    default: {
      const entries = structuredClone(base.toc.entries);
      for (let n = 1 + int(2); n > 0; n--) {
        const e = entries[int(entries.length)]!;
        const field = pick(FIELDS);
        const roll = r();
        if (roll < 0.15) delete e[field];
        else if (roll < 0.45 && typeof e[field] === 'number') e[field] = (e[field] as number) + pick([-1, 1, -512, 512, 4096, -(e[field] as number)]);
        else if (roll < 0.55) e[field] = pick([base.tocOffset, base.tocOffset - 1, base.blob.length, base.blob.length + 1]);
        else e[field] = pick(HOSTILE_VALUES);
      }
      return { kind: 'entry fields', blob: withToc(entries) };
    }
  }
}

/** Open and read everything; returns what happened, throws on anything untyped or wrong. */
async function runCase(base: Base, m: Mutation): Promise<string> {
  let esgz: Estargz;
  try {
    esgz = await openEstargz(new MemoryBlobSource(m.blob), m.tocDigest ? { tocDigest: m.tocDigest } : {});
  } catch (err) {
    if (err instanceof SgError && OPEN_CODES.has(err.code)) return `open:${err.code}`;
    throw err;
  }
  let outcome = 'read:ok';
  for (const node of esgz.model.nodes()) {
    if (node.type !== 'reg') continue;
    let bytes: Buffer;
    try {
      bytes = await esgz.readFile(node.name);
    } catch (err) {
      if (err instanceof SgError && err.code === 'CORRUPT') {
        outcome = 'read:CORRUPT';
        continue;
      }
      throw err;
    }
    const real = base.files.get(node.name);
    if (m.tocDigest) assert.deepEqual(bytes, real, `${m.kind}: ${node.name} must read as its real content`);
    if (node.digest) assert.equal(sha256(bytes), node.digest, `${m.kind}: ${node.name} bytes match the TOC digest`);
    if (real && node.digest === sha256(real)) assert.deepEqual(bytes, real, `${m.kind}: ${node.name}`);
    for (const c of node.chunks) assert.equal(sha256(bytes.subarray(c.chunkOffset, c.chunkOffset + c.chunkSize)), c.digest);
  }
  return outcome;
}

describe('estargz fuzz', () => {
  it(`${CASES} footer/TOC/blob mutations: a correct read or a typed error, never wrong bytes`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'estargz-fuzz-'));
    try {
      const bases = [
        await makeBase('synthetic', await syntheticBlob(dir)),
        await makeBase('tree-cs4096', readFileSync(join(CORPUS_DIR, 'blobs/tree-cs4096.estargz.tar.gz'))),
      ];
      const r = prng(0x5eed);
      const outcomes = new Map<string, number>();
      const t0 = performance.now();
      for (let n = 0; n < CASES; n++) {
        const base = bases[n % bases.length]!;
        const m = mutate(base, r);
        let timer: NodeJS.Timeout | undefined;
        const hang = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`case ${n} (${m.kind}) hung`)), CASE_TIMEOUT_MS);
        });
        try {
          const outcome = await Promise.race([runCase(base, m), hang]);
          const key = `${m.kind} → ${outcome}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        } catch (err) {
          assert.fail(`case ${n} on ${base.name} (${m.kind}): ${err instanceof Error ? err.stack : String(err)}`);
        } finally {
          clearTimeout(timer);
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const summary = [...outcomes].sort().map(([k, v]) => `${k}: ${v}`);
      process.stderr.write(`estargz fuzz: ${CASES} cases in ${seconds.toFixed(1)} s\n  ${summary.join('\n  ')}\n`);
      // The mutations must reach past the footer: some open fine, some fail at each stage.
      const total = (re: RegExp) => [...outcomes].filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
      for (const re of [/open:HOSTILE_TOC/, /open:CORRUPT/, /open:NOT_ESTARGZ/, /open:TOC_DIGEST_MISMATCH/, /read:ok/, /read:CORRUPT/]) {
        assert.ok(total(re) > 0, `no case ended in ${re.source}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
