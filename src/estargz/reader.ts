/**
 * Opening an eStargz blob through any BlobSource: footer → TOC (bounded gunzip, one tar
 * entry) → TOC digest check → checked entries → layer model. Reads after that are chunk
 * by chunk and always verified.
 */
import { createHash } from 'node:crypto';
import { SgError } from '../errors.js';
import type { BlobSource } from '../source/blob-source.js';
import { readChunk } from './chunk.js';
import { FOOTER_SIZE, parseFooter, type Footer } from './footer.js';
import { inflatePrefix } from './inflate.js';
import { buildModel, type LayerModel } from './model.js';
import { TOC_TAR_NAME } from './names.js';
import { parseEntryAt } from './tar.js';
import { decodeToc, type Chunk, type Toc } from './toc.js';

export const DEFAULT_MAX_TOC_BYTES = 64 << 20;
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Blob bytes per read while streaming the TOC member into gunzip. */
const TOC_READ_PIECE = 1 << 20;
/** Room for the tar headers (PAX included) in front of the TOC JSON. */
const TOC_HEADER_SLACK = 2 << 20;

export interface OpenOptions {
  /** Expected TOC digest (the layer's `containerd.io/snapshot/stargz/toc.digest`). */
  readonly tocDigest?: string;
  /** Largest uncompressed TOC JSON accepted (default 64 MiB). */
  readonly maxTocBytes?: number;
  /** Most TOC entries accepted, `chunk` entries included (default 1,000,000). */
  readonly maxEntries?: number;
  readonly signal?: AbortSignal;
}

export interface Estargz {
  readonly source: BlobSource;
  readonly blobSize: number;
  readonly footer: Footer;
  /** sha256 of the TOC JSON, `sha256:<hex>`. */
  readonly tocDigest: string;
  readonly toc: Toc;
  readonly model: LayerModel;
  /** One verified chunk of the file `entry` (clean name, for errors). */
  readChunk(c: Chunk, entry: string, signal?: AbortSignal): Promise<Buffer>;
  /**
   * A regular file's content as verified chunks in order (hardlinks resolve); the file
   * digest, when the TOC has one, is checked after the last chunk.
   */
  fileChunks(name: string, signal?: AbortSignal): AsyncGenerator<Buffer>;
  /** A regular file's whole verified content. */
  readFile(name: string, signal?: AbortSignal): Promise<Buffer>;
}

/** Message of the CORRUPT error for a file whose verified chunks still miss the file digest. */
export const FILE_DIGEST_MISMATCH = 'file digest mismatch';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export async function openEstargz(source: BlobSource, opts: OpenOptions = {}): Promise<Estargz> {
  const { signal } = opts;
  if (opts.tocDigest !== undefined && !DIGEST.test(opts.tocDigest)) {
    throw new SgError('INVALID_ARGUMENT', 'expected TOC digest is not sha256:<64 hex>', { tocDigest: opts.tocDigest });
  }
  const maxTocBytes = opts.maxTocBytes ?? DEFAULT_MAX_TOC_BYTES;
  const blob = source.describe;
  const blobSize = await source.size(signal);
  const tailLength = Math.min(blobSize, FOOTER_SIZE);
  const footer = parseFooter(await source.readRange(blobSize - tailLength, tailLength, signal), blob);
  const tocEnd = blobSize - footer.footerSize;
  if (footer.tocOffset >= tocEnd) {
    throw new SgError('CORRUPT', 'footer points past the TOC space', { blob, tocOffset: footer.tocOffset, blobSize });
  }

  const json = await readTocJson(source, footer.tocOffset, tocEnd, maxTocBytes, signal);
  const tocDigest = 'sha256:' + createHash('sha256').update(json).digest('hex');
  if (opts.tocDigest !== undefined && opts.tocDigest !== tocDigest) {
    throw new SgError('TOC_DIGEST_MISMATCH', 'TOC digest does not match the expected digest', { blob, expected: opts.tocDigest, actual: tocDigest });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new SgError('CORRUPT', 'TOC is not valid JSON', { blob, tocDigest }, { cause: err });
  }
  const toc = withBlob(blob, () => decodeToc(parsed, { blobSize, tocOffset: footer.tocOffset, maxEntries: opts.maxEntries ?? DEFAULT_MAX_ENTRIES }));
  const model = withBlob(blob, () => buildModel(toc));

  async function* fileChunks(name: string, sig?: AbortSignal): AsyncGenerator<Buffer> {
    const node = model.lookup(name);
    if (!node) throw new SgError('NOT_FOUND', 'no such entry', { blob, entry: name });
    if (node.type !== 'reg') throw new SgError('INVALID_ARGUMENT', 'not a regular file', { blob, entry: name, type: node.type });
    const whole = createHash('sha256');
    for (const c of node.chunks) {
      const bytes = await readChunk(source, c, node.name, sig);
      whole.update(bytes);
      yield bytes;
    }
    const actual = 'sha256:' + whole.digest('hex');
    if (node.digest && node.digest !== actual) {
      throw new SgError('CORRUPT', FILE_DIGEST_MISMATCH, { blob, entry: node.name, expected: node.digest, actual });
    }
  }

  return {
    source,
    blobSize,
    footer,
    tocDigest,
    toc,
    model,
    readChunk: (c, entry, sig) => readChunk(source, c, entry, sig),
    fileChunks,
    async readFile(name, sig) {
      const parts: Buffer[] = [];
      for await (const part of fileChunks(name, sig)) parts.push(part);
      return Buffer.concat(parts);
    },
  };
}

/**
 * The `stargz.index.json` bytes from the TOC member in [start, end): the blob is read
 * piece by piece and inflated only up to the JSON's end, never beyond `maxTocBytes`.
 */
async function readTocJson(source: BlobSource, start: number, end: number, maxTocBytes: number, signal?: AbortSignal): Promise<Buffer> {
  const blob = source.describe;
  const context = { blob, tocOffset: start };
  async function* pieces(): AsyncGenerator<Uint8Array> {
    for (let at = start; at < end; at += TOC_READ_PIECE) {
      yield await source.readRange(at, Math.min(TOC_READ_PIECE, end - at), signal);
    }
  }
  let dataStart = 0;
  const goal = (head: Buffer): number | undefined => {
    let step;
    try {
      step = parseEntryAt(head, 0, false);
    } catch (err) {
      throw new SgError('CORRUPT', `TOC tar: ${err instanceof Error ? err.message : String(err)}`, context, { cause: err });
    }
    if (step.kind === 'more') return undefined;
    if (step.kind === 'end') throw new SgError('CORRUPT', 'TOC tar has no entry', context);
    if (step.header.name !== TOC_TAR_NAME || step.header.typeflag !== '0') {
      throw new SgError('CORRUPT', `TOC tar entry is not a file named ${TOC_TAR_NAME}`, { ...context, name: step.header.name.slice(0, 256) });
    }
    if (step.header.size > maxTocBytes) {
      throw new SgError('TOO_LARGE', 'TOC JSON is larger than allowed', { ...context, size: step.header.size, maxTocBytes });
    }
    dataStart = step.dataStart;
    return step.dataStart + step.header.size;
  };
  const out = await inflatePrefix(pieces(), goal, TOC_HEADER_SLACK, context, signal);
  return out.subarray(dataStart);
}

/** Adds the blob to errors thrown by pure TOC code that does not know it. */
function withBlob<T>(blob: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof SgError) throw new SgError(err.code, err.message, { blob, ...err.context }, { cause: err.cause });
    throw err;
  }
}
