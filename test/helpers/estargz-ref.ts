/**
 * Shared pieces of the eStargz tests: the reference corpus, the reference tool
 * (`estargz-ref`, built once from Debian's Go sources into a cache path) and an in-memory
 * blob source.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { SgError } from '../../src/errors.js';
import { encodeFooter } from '../../src/estargz/footer.js';
import { TOC_TAR_NAME } from '../../src/estargz/names.js';
import { END_OF_ARCHIVE, encodeFileHeader, paddingFor } from '../../src/estargz/tar.js';
import type { BlobSource } from '../../src/source/blob-source.js';

/** dist/test/helpers/ → repo root → ../shared */
export const CORPUS_DIR = new URL('../../../../shared/testdata/estargz/', import.meta.url).pathname;

export interface CorpusBlob {
  name: string;
  blob: string;
  expected: string;
  input: string;
  tocDigest: string;
  diffID: string;
  size: number;
  chunkSize: number;
  prioritizedFiles: string[];
  allowPrioritizeNotFound: boolean;
  listExitCode: number;
  expectedFailure: null | { stage: string; entry?: string; chunkOffset?: number; unverifiedFileSha256?: string };
}

export interface Corpus {
  defaultChunkSize: number;
  inputs: Record<string, { file: string; tarSha256: string; tarSize: number }>;
  blobs: CorpusBlob[];
}

export function loadCorpus(): Corpus {
  return JSON.parse(readFileSync(join(CORPUS_DIR, 'corpus.json'), 'utf8')) as Corpus;
}

export function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const run = promisify(execFile);

/**
 * Path of a working `estargz-ref`: $ESTARGZ_REF, else a cached build, else built now with
 * the corpus's build.sh (installs Debian packages when root). The error says why not.
 */
let refTool: Promise<string> | undefined;
export function estargzRef(): Promise<string> {
  refTool ??= (async () => {
    const explicit = process.env.ESTARGZ_REF;
    if (explicit) return explicit;
    const dir = join(tmpdir(), 'stargz-ipfs-estargz-ref');
    const bin = join(dir, 'estargz-ref');
    if (!existsSync(bin)) {
      mkdirSync(dir, { recursive: true });
      await run(join(CORPUS_DIR, 'build.sh'), [bin], { timeout: 15 * 60_000, maxBuffer: 64 << 20 });
    }
    return bin;
  })();
  return refTool;
}

/** Runs `estargz-ref list` and returns its exit code and JSON lines. */
export async function refList(blobPath: string, tocDigest?: string): Promise<{ code: number; lines: Record<string, unknown>[] }> {
  const bin = await estargzRef();
  const args = ['list', ...(tocDigest ? ['-toc-digest', tocDigest] : []), blobPath];
  try {
    const { stdout } = await run(bin, args, { maxBuffer: 256 << 20 });
    return { code: 0, lines: parseLines(stdout) };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, lines: parseLines(e.stdout ?? '') };
  }
}

const parseLines = (s: string) =>
  s
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A blob held in memory; `reads` counts readRange calls and bytes. */
export class MemoryBlobSource implements BlobSource {
  readonly reads = { calls: 0, bytes: 0 };
  constructor(
    readonly bytes: Uint8Array,
    readonly describe = 'memory',
  ) {}

  async size(): Promise<number> {
    return this.bytes.length;
  }

  async readRange(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.bytes.length) {
      throw new SgError('INVALID_ARGUMENT', 'range outside blob', { offset, length, size: this.bytes.length });
    }
    this.reads.calls++;
    this.reads.bytes += length;
    return this.bytes.subarray(offset, offset + length);
  }
}

/** A blob from `payload` (the data members) and a TOC JSON: TOC member + footer appended. */
export function assembleBlob(payload: Uint8Array, tocJson: Uint8Array): Buffer {
  const tar = Buffer.concat([encodeFileHeader(TOC_TAR_NAME, tocJson.length), tocJson, paddingFor(tocJson.length), END_OF_ARCHIVE]);
  return Buffer.concat([payload, gzipSync(tar), encodeFooter(payload.length)]);
}
