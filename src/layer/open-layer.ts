/**
 * Builds a ready Layer from a blob source: open and verify the eStargz TOC, wire the chunk
 * reader to the shared cache, start prefetch (landmark, label, or config size) and queue
 * the whole-layer background fetch (spec §3.11–3.12).
 */
import { setMaxListeners } from 'node:events';
import { checkTocDigest, openEstargz, type Chunk, type ChunkTable, type Estargz, type LayerModel } from '../estargz/index.js';
import type { BlobSource } from '../source/blob-source.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { Logger } from '../log/logger.js';
import { ChunkReader, type Wanted } from './chunk-reader.js';
import { WholeFiles } from './whole-files.js';
import { Layer } from './layer.js';
import type { BackgroundScheduler } from './background-scheduler.js';
import { sharedRangeBuffers } from './range-buffers.js';

export interface OpenLayerOptions {
  readonly digest: string;
  /** Expected TOC digest; undefined only when verification is explicitly skipped. */
  readonly tocDigest: string | undefined;
  /** Bytes from the blob start to prefetch when the layer has no landmark (label or config). */
  readonly prefetchSize: number;
  readonly noPrefetch: boolean;
  readonly noBackgroundFetch: boolean;
  readonly opaqueXattr: 'trusted' | 'user';
  /** `[blob] chunk_size`: fetches are widened to these boundaries (0: exact ranges). */
  readonly fetchAlignBytes?: number;
  /**
   * The layer already opened from `source` without a TOC digest to check (a neighbour
   * resolved ahead of its own Prepare): checked against `tocDigest` here instead.
   */
  readonly resolved?: Estargz;
  readonly signal?: AbortSignal;
}

export interface LayerDeps {
  readonly cache: ChunkCache;
  readonly scheduler: BackgroundScheduler;
  readonly log: Logger;
}

export interface OpenedLayer {
  readonly layer: Layer;
  readonly estargz: Estargz;
  /** Settles when prefetch is done (resolves at once when there is none). */
  readonly prefetched: Promise<void>;
  /** Stops background work for this layer. */
  close(): void;
}

/** Blob-order batches of at most this many compressed bytes, one request each. */
const BATCH_BYTES = 8 << 20;

export async function openLayer(source: BlobSource, opts: OpenLayerOptions, deps: LayerDeps): Promise<OpenedLayer> {
  const log = deps.log.child({ layer: opts.digest });
  // A mount is foreground work: background fetching waits until things are quiet.
  deps.scheduler.foreground();
  let estargz: Estargz;
  if (opts.resolved) {
    checkTocDigest(source.describe, opts.tocDigest, opts.resolved.tocDigest);
    estargz = opts.resolved;
  } else {
    estargz = await openEstargz(source, { tocDigest: opts.tocDigest, signal: opts.signal });
  }
  const { model } = estargz;
  // Gzip members available so far, by their first chunk: chunks of one member count once.
  const seen = new Uint8Array(model.chunks.count);
  // TOC and footer were fetched to open the layer.
  let fetched = estargz.blobSize - estargz.footer.tocOffset;
  const reader = new ChunkReader({
    source,
    cache: deps.cache,
    log,
    onForeground: () => deps.scheduler.foreground(),
    fetchAlignBytes: opts.fetchAlignBytes,
    rangeBuffers: sharedRangeBuffers,
    chunksWithin: (start: number, end: number) => {
      const out: Chunk[] = [];
      for (let i = chunksBefore(model.chunks, start); i < model.chunks.count && model.chunks.compressedEnd(i) <= end; i++) out.push(model.chunks.chunk(i));
      return out;
    },
    onAvailable: (c: Chunk) => {
      if (seen[c.member]) return;
      seen[c.member] = 1;
      fetched += c.compressedEnd - c.offset;
    },
  });
  const wholeFiles = new WholeFiles(deps.cache, log);
  const layer = new Layer(estargz, reader, { digest: opts.digest, opaqueXattr: opts.opaqueXattr, log, fetchedSize: () => fetched, wholeFiles });

  const closed = new AbortController();
  // Every chunk of a batch listens on it while inflating.
  setMaxListeners(0, closed.signal);
  // Chunks are in blob order, so the ones to prefetch are the first `prefetchCount`.
  const prefetchEnd = model.prefetchEnd ?? (model.noPrefetch ? 0 : opts.prefetchSize);
  const prefetchCount = opts.noPrefetch ? 0 : chunksBefore(model.chunks, prefetchEnd);
  const files = fileOfChunk(model);
  const prefetched =
    prefetchCount === 0
      ? Promise.resolve()
      : runBatches(batches(model.chunks, 0, prefetchCount), (batch) => reader.ensure(files.wanted(batch), closed.signal)).then(
          () => log.info('prefetch done', { chunks: prefetchCount, prefetchEnd }),
          (err: unknown) => log.warn('prefetch failed', { err }),
        );

  if (!opts.noBackgroundFetch) {
    const started = Date.now();
    let pending = 0;
    for (const batch of batches(model.chunks, prefetchCount, model.chunks.count)) {
      pending++;
      deps.scheduler
        .submit((signal) => {
          if (closed.signal.aborted) return Promise.resolve();
          const both = AbortSignal.any([signal, closed.signal]);
          setMaxListeners(0, both);
          return reader.ensure(files.wanted(batch), both);
        })
        .then(
          () => {
            if (--pending === 0) log.info('background fetch done', { ms: Date.now() - started });
          },
          (err: unknown) => {
            if (!closed.signal.aborted) log.warn('background fetch gave up on a batch', { err });
          },
        );
    }
  }
  return { layer, estargz, prefetched, close: () => closed.abort(new Error('layer closed')) };
}

/** Chunks [from, to) of the layer, in blob order. */
interface Batch {
  readonly from: number;
  readonly to: number;
}

/** How many chunks start before blob offset `end`. */
function chunksBefore(chunks: ChunkTable, end: number): number {
  let lo = 0;
  let hi = chunks.count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chunks.offset(mid) < end) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Which file each chunk belongs to (hardlinks share a node, so every chunk is read once),
 * worked out when a batch first needs it and dropped with the batches.
 */
function fileOfChunk(model: LayerModel): { wanted(b: Batch): Wanted[] } {
  let owner: Uint32Array | undefined;
  const ownerOf = () => {
    if (owner) return owner;
    owner = new Uint32Array(model.chunks.count);
    for (const node of model.nodes()) for (const c of node.chunks) owner[c.index] = node.id;
    return owner;
  };
  return {
    wanted({ from, to }) {
      const out: Wanted[] = [];
      for (let i = from; i < to; ) {
        const node = model.node(ownerOf()[i]!);
        const first = node.chunks[0]!.index;
        for (; i < to && i - first < node.chunks.length; i++) out.push({ node, index: i - first });
      }
      return out;
    },
  };
}

/** Chunks [from, to) as batches of at most BATCH_BYTES of compressed range each. */
function batches(chunks: ChunkTable, from: number, to: number): Batch[] {
  const out: Batch[] = [];
  let start = from;
  for (let i = from; i < to; i++) {
    if (i > start && chunks.compressedEnd(i) - chunks.offset(start) > BATCH_BYTES) {
      out.push({ from: start, to: i });
      start = i;
    }
  }
  if (start < to) out.push({ from: start, to });
  return out;
}

async function runBatches(all: readonly Batch[], run: (b: Batch) => Promise<void>): Promise<void> {
  for (const b of all) await run(b);
}
