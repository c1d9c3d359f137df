/**
 * eStargz benchmarks.
 *
 * - estargz.toc_parse_100k: open a blob whose TOC has 100,000 entries (gunzip, digest,
 *   JSON, checks, layer model) in a worker: the median of 3 warm runs, and the least
 *   old-generation heap the open completes in.
 * - estargz.build_throughput: our writer on a generated 256 MiB tar against `gzip` of the
 *   same tar in the same run, both at level 6 (and again at 9, the reference default).
 *   The writer runs in a child process so its peak RSS is its own.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, openSync, closeSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { isMainThread, Worker, workerData, parentPort } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { encodeFooter } from '../src/estargz/footer.js';
import { TOC_TAR_NAME } from '../src/estargz/names.js';
import { openEstargz } from '../src/estargz/reader.js';
import { END_OF_ARCHIVE, encodeFileHeader, paddingFor } from '../src/estargz/tar.js';
import type { BlobSource } from '../src/source/blob-source.js';
import { emit } from './report.js';

const TOC_ENTRIES = 100_000;
const HEAP_CAP_MIB = 200;
const TAR_MIB = 256;

interface ParseJob {
  estargzTocBench: true;
  blob: Uint8Array;
  runs: number;
}

// In a worker: open the blob `runs` times, report the median time of all but the first.
if (!isMainThread && (workerData as Partial<ParseJob> | undefined)?.estargzTocBench) {
  const { blob, runs } = workerData as ParseJob;
  const source: BlobSource = {
    describe: 'bench',
    size: async () => blob.length,
    readRange: async (offset, length) => blob.subarray(offset, offset + length),
  };
  const times: number[] = [];
  let nodes = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const esgz = await openEstargz(source);
    times.push((performance.now() - t0) / 1000);
    nodes = esgz.model.nodeCount;
  }
  const timed = (times.length > 1 ? times.slice(1) : times).sort((a, b) => a - b);
  parentPort!.postMessage({ seconds: timed[Math.floor(timed.length / 2)]!, nodes });
}

export async function run(): Promise<void> {
  await tocParse();
  await buildThroughput();
}

/** A blob with a 100k-entry TOC shaped like a real layer (dirs, files, some chunked). */
function blobWithBigToc(): Buffer {
  const entries: Record<string, unknown>[] = [];
  const digest = (i: number) => 'sha256:' + createHash('sha256').update(String(i)).digest('hex');
  let offset = 1000;
  let dir = 0;
  while (entries.length < TOC_ENTRIES) {
    entries.push({ name: `usr/lib/pkg-${dir}/`, type: 'dir', modtime: '2024-01-01T00:00:00Z', mode: 0o755 });
    for (let f = 0; f < 48 && entries.length < TOC_ENTRIES; f++) {
      const name = `usr/lib/pkg-${dir}/module-${f}.so`;
      const chunked = f % 16 === 0;
      const size = chunked ? 3 * 4096 : 1000 + f;
      entries.push({ name, type: 'reg', size, modtime: '2024-01-01T00:00:00Z', mode: 0o644, offset, digest: digest(offset), ...(chunked ? { chunkSize: 4096 } : {}), chunkDigest: digest(offset + 1) });
      offset += 200;
      if (chunked) {
        for (const co of [4096, 8192]) {
          entries.push({ name, type: 'chunk', offset, chunkOffset: co, ...(co === 4096 ? { chunkSize: 4096 } : {}), chunkDigest: digest(offset) });
          offset += 200;
        }
      }
      if (entries.length < TOC_ENTRIES && f % 12 === 5) entries.push({ name: `usr/lib/pkg-${dir}/link-${f}`, type: 'symlink', linkName: `module-${f}.so`, mode: 0o777 });
    }
    dir++;
  }
  const json = Buffer.from(JSON.stringify({ version: 1, entries }, null, '\t'));
  const tocTar = Buffer.concat([encodeFileHeader(TOC_TAR_NAME, json.length), json, paddingFor(json.length), END_OF_ARCHIVE]);
  // The payload is never read when opening; zeros of the right length stand in for it.
  return Buffer.concat([Buffer.alloc(offset), gzipSync(tocTar), encodeFooter(offset)]);
}

/** Opens `blob` in a worker, its old-generation heap capped if asked; undefined when it runs out. */
async function parseInWorker(blob: Buffer, runs: number, capMiB?: number): Promise<{ seconds: number; nodes: number } | undefined> {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { estargzTocBench: true, blob, runs } satisfies ParseJob,
    ...(capMiB === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: capMiB } }),
  });
  try {
    return await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? resolve(undefined) : reject(err)));
      worker.once('exit', (code) => reject(new Error(`TOC parse worker exited with ${code}`)));
    });
  } finally {
    await worker.terminate();
  }
}

async function tocParse(): Promise<void> {
  const blob = blobWithBigToc();
  // Timed with the default heap limit, as the daemon runs.
  const timed = (await parseInWorker(blob, 4))!;
  // The heap it needs: the smallest old-space cap (16 MiB steps) the open completes under.
  let needed: number | undefined;
  for (let cap = 48; cap <= HEAP_CAP_MIB && needed === undefined; cap += 16) {
    if (await parseInWorker(blob, 1, cap)) needed = cap;
  }
  if (needed === undefined) throw new Error(`opening a ${TOC_ENTRIES}-entry TOC needs more than ${HEAP_CAP_MIB} MiB of heap`);
  process.stderr.write(`toc_parse_100k: ${timed.nodes} nodes, blob ${(blob.length / 2 ** 20).toFixed(1)} MiB\n`);
  emit({ bench: 'estargz.toc_parse_100k', value: timed.seconds, unit: 's', baseline: null, target: '< 1 s (open: gunzip, digest, JSON, checks, model; median of 3)' });
  emit({ bench: 'estargz.toc_parse_100k.heap', value: needed, unit: 'MiB', baseline: null, target: `< ${HEAP_CAP_MIB} (smallest old-space cap, 16 MiB steps, the open completes under)` });
}

/** mulberry32 */
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

/** 4 MiB of text-like bytes (skewed word choice) with random stretches: gzip -6 halves it. */
function semiCompressiblePool(r: () => number): Buffer {
  const words = Array.from({ length: 1024 }, () => Buffer.from(Array.from({ length: 2 + Math.floor(r() * 9) }, () => 97 + Math.floor(r() * 26))));
  const pool = Buffer.alloc(4 << 20);
  let p = 0;
  while (p < pool.length) {
    if (r() < 0.04) {
      for (let n = 16 + Math.floor(r() * 48); n > 0 && p < pool.length; n--) pool[p++] = Math.floor(r() * 256);
    } else {
      const w = words[Math.floor(r() ** 2 * words.length)]!;
      p += w.copy(pool, p);
      if (p < pool.length) pool[p++] = r() < 0.1 ? 10 : 32;
    }
  }
  return pool;
}

/** A deterministic tar of about `mib` MiB: many small files, some large multi-chunk ones. */
async function writeTar(path: string, mib: number): Promise<void> {
  const r = prng(42);
  const pool = semiCompressiblePool(r);
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(path));
  let total = 0;
  const target = mib << 20;
  for (let i = 0; total < target; i++) {
    if (i % 100 === 0) pack.entry({ name: `layer/dir-${i / 100}/`, type: 'directory', mode: 0o755, mtime: new Date(1.7e12) });
    const size = Math.min(target - total, i % 97 === 0 ? (12 << 20) + Math.floor(r() * (6 << 20)) : Math.floor(2 ** (9 + r() * 11)));
    const data = Buffer.alloc(size);
    for (let at = 0; at < size; ) {
      const from = Math.floor(r() * (pool.length - 65536));
      at += pool.copy(data, at, from, from + Math.min(65536, size - at));
    }
    await new Promise<void>((resolve, reject) => pack.entry({ name: `layer/dir-${Math.floor(i / 100)}/file-${i}`, size, mode: 0o644, mtime: new Date(1.7e12) }, data, (err) => (err ? reject(err) : resolve())));
    total += size;
  }
  pack.finalize();
  await done;
}

/** Seconds for `gzip -<level>` of the tar into /dev/null. */
async function gzipSeconds(tarPath: string, level: number): Promise<number> {
  const out = openSync('/dev/null', 'w');
  try {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const p = spawn('gzip', [`-${level}`, '-c', tarPath], { stdio: ['ignore', out, 'inherit'] });
      p.once('error', reject);
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gzip exited with ${code}`))));
    });
    return (performance.now() - t0) / 1000;
  } finally {
    closeSync(out);
  }
}

/** Our writer in a fresh process: seconds inside it and its peak RSS. */
async function writerRun(tarPath: string, outPath: string, level: number): Promise<{ seconds: number; rssMiB: number; size: number }> {
  const writer = new URL('../src/estargz/writer.js', import.meta.url).href;
  const script = `
    const { buildEstargz } = await import(${JSON.stringify(writer)});
    const t0 = performance.now();
    const r = await buildEstargz(${JSON.stringify(tarPath)}, ${JSON.stringify(outPath)}, { level: ${level} });
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ seconds, rssMiB: process.resourceUsage().maxRSS / 1024, size: r.size }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(stdout) as { seconds: number; rssMiB: number; size: number };
}

async function buildThroughput(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'estargz-bench-'));
  try {
    const tarPath = join(dir, 'layer.tar');
    const out = join(dir, 'layer.estargz');
    // Peak RSS on a quarter-size layer first: the writer's memory must not grow with the layer.
    await writeTar(tarPath, TAR_MIB / 4);
    const small = await writerRun(tarPath, out, 6);
    await writeTar(tarPath, TAR_MIB);
    const mb = statSync(tarPath).size / 1e6;
    for (const level of [6, 9]) {
      const gzip = await gzipSeconds(tarPath, level);
      const ours = await writerRun(tarPath, out, level);
      process.stderr.write(`build level ${level}: tar ${mb.toFixed(0)} MB → blob ${(ours.size / 1e6).toFixed(0)} MB in ${ours.seconds.toFixed(2)} s; gzip -${level} ${gzip.toFixed(2)} s\n`);
      if (level === 6) {
        emit({ bench: 'estargz.build_throughput', value: mb / ours.seconds, unit: 'MB/s', baseline: mb / gzip, target: 'ratio >= 0.8 (writer and gzip both at level 6)' });
        emit({ bench: 'estargz.build_throughput.peak_rss', value: ours.rssMiB, unit: 'MiB', baseline: small.rssMiB, target: `ratio ~1: ${TAR_MIB} MiB tar vs ${TAR_MIB / 4} MiB tar (baseline)` });
      } else {
        emit({ bench: 'estargz.build_throughput_level9', value: mb / ours.seconds, unit: 'MB/s', baseline: mb / gzip, target: 'informative: level 9 (reference default) vs gzip -9' });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
