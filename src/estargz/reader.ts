/**
 * Opening an eStargz blob through any BlobSource: footer → TOC (bounded gunzip, one tar
 * entry, its JSON taken apart entry by entry as it is inflated) → TOC digest check →
 * checked entries → layer model. Reads after that are chunk by chunk and always verified.
 */
import { createHash } from 'node:crypto';
import { SgError } from '../errors.js';
import type { BlobSource } from '../source/blob-source.js';
import { readChunk } from './chunk.js';
import { FOOTER_SIZE, parseFooter, type Footer } from './footer.js';
import { inflatePieces } from './inflate.js';
import { ModelBuilder, type LayerModel } from './model.js';
import { TOC_TAR_NAME } from './names.js';
import { parseEntryAt } from './tar.js';
import type { Chunk, EntrySink, Toc, TocBounds, TocEntry } from './toc.js';
import { TocStream } from './toc-stream.js';

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
  readonly model: LayerModel;
  /**
   * The TOC entries, read and checked again: the model keeps none of them (a layer's
   * entries would cost more memory than its model), so this is for tools, not for reads.
   */
  readToc(signal?: AbortSignal): Promise<Toc>;
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

/** Where a blob's TOC is and how big it may be. */
interface TocPlace {
  readonly source: BlobSource;
  readonly footer: Footer;
  readonly bounds: TocBounds;
  readonly maxTocBytes: number;
}

/** TOC_DIGEST_MISMATCH unless `actual` is the `expected` TOC digest (none expected: any). */
export function checkTocDigest(blob: string, expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new SgError('TOC_DIGEST_MISMATCH', 'TOC digest does not match the expected digest', { blob, expected, actual });
  }
}

export async function openEstargz(source: BlobSource, opts: OpenOptions = {}): Promise<Estargz> {
  const { signal } = opts;
  if (opts.tocDigest !== undefined && !DIGEST.test(opts.tocDigest)) {
    throw new SgError('INVALID_ARGUMENT', 'expected TOC digest is not sha256:<64 hex>', { tocDigest: opts.tocDigest });
  }
  const blob = source.describe;
  const blobSize = await source.size(signal);
  const tailLength = Math.min(blobSize, FOOTER_SIZE);
  const footer = parseFooter(await source.readRange(blobSize - tailLength, tailLength, signal), blob);
  if (footer.tocOffset >= blobSize - footer.footerSize) {
    throw new SgError('CORRUPT', 'footer points past the TOC space', { blob, tocOffset: footer.tocOffset, blobSize });
  }
  const place: TocPlace = {
    source,
    footer,
    bounds: { blobSize, tocOffset: footer.tocOffset, maxEntries: opts.maxEntries ?? DEFAULT_MAX_ENTRIES },
    maxTocBytes: opts.maxTocBytes ?? DEFAULT_MAX_TOC_BYTES,
  };
  // A model for every `entries` array in the JSON: JSON.parse would keep the last.
  let builder: ModelBuilder | undefined;
  const { tocDigest, read } = await loadToc(place, opts.tocDigest, () => {
    const b = (builder = new ModelBuilder());
    return (e, chunks) => b.add(e, chunks);
  }, signal);
  const model = withBlob(blob, () => builder!.finish(read.chunks));
  return layerReader(place, tocDigest, model);
}

/**
 * The Estargz over an opened blob. Its closures are made here, apart from openEstargz,
 * so that they cannot keep the TOC (or its JSON) alive.
 */
function layerReader(place: TocPlace, tocDigest: string, model: LayerModel): Estargz {
  const { source, footer } = place;
  const blob = source.describe;
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
    blobSize: place.bounds.blobSize,
    footer,
    tocDigest,
    model,
    async readToc(sig) {
      let entries: TocEntry[] = [];
      const { read } = await loadToc(place, tocDigest, () => {
        const list: TocEntry[] = (entries = []);
        return (e) => list.push(e);
      }, sig);
      return { version: 1, numTocEntries: read.numTocEntries, entries, chunks: read.chunks };
    },
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
 * The TOC member: its JSON's digest (checked against `expected`, if given) and its checked
 * entries, handed to the sinks `startEntries` gives. The blob is read piece by piece and
 * inflated only up to the JSON's end, never beyond `maxTocBytes`; the JSON is hashed and
 * decoded as it comes.
 */
async function loadToc(
  { source, footer, bounds, maxTocBytes }: TocPlace,
  expected: string | undefined,
  startEntries: () => EntrySink,
  signal?: AbortSignal,
): Promise<{ tocDigest: string; read: Pick<Toc, 'numTocEntries' | 'chunks'> }> {
  const blob = source.describe;
  const start = footer.tocOffset;
  const end = bounds.blobSize - footer.footerSize;
  const context = { blob, tocOffset: start };
  // The next piece is on its way while this one inflates. One still in flight when the
  // JSON has ended is not waited for, nor is its failure.
  const fetch = (at: number) => {
    const piece = source.readRange(at, Math.min(TOC_READ_PIECE, end - at), signal);
    piece.catch(() => {});
    return piece;
  };
  async function* pieces(): AsyncGenerator<Uint8Array> {
    let next = fetch(start);
    for (let at = start; at < end; at += TOC_READ_PIECE) {
      const piece = await next;
      if (at + TOC_READ_PIECE < end) next = fetch(at + TOC_READ_PIECE);
      yield piece;
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
  const hash = createHash('sha256');
  const toc = new TocStream(bounds, startEntries);
  let first = true;
  await inflatePieces(
    pieces(),
    goal,
    TOC_HEADER_SLACK,
    context,
    (piece) => {
      // The first piece holds the whole tar header: the goal was known from it.
      const json = first ? piece.subarray(dataStart) : piece;
      first = false;
      hash.update(json);
      toc.push(json);
    },
    signal,
  );
  const tocDigest = 'sha256:' + hash.digest('hex');
  checkTocDigest(blob, expected, tocDigest);
  try {
    return { tocDigest, read: withBlob(blob, () => toc.finish()) };
  } catch (err) {
    if (err instanceof SyntaxError) throw new SgError('CORRUPT', 'TOC is not valid JSON', { blob, tocDigest }, { cause: err });
    throw err;
  }
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
