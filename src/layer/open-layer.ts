/**
 * Builds a ready Layer from a blob source: open and verify the eStargz TOC, wire the chunk
 * reader to the shared cache, start prefetch (landmark, label, or config size) and queue
 * the whole-layer background fetch (spec §3.11–3.12).
 */
import { setMaxListeners } from 'node:events';
import { openEstargz, type Chunk, type Estargz } from '../estargz/index.js';
import type { BlobSource } from '../source/blob-source.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { Logger } from '../log/logger.js';
import { ChunkReader, type Wanted } from './chunk-reader.js';
import { Layer } from './layer.js';
import type { BackgroundScheduler } from './background-scheduler.js';

export interface OpenLayerOptions {
  readonly digest: string;
  /** Expected TOC digest; undefined only when verification is explicitly skipped. */
  readonly tocDigest: string | undefined;
  /** Bytes from the blob start to prefetch when the layer has no landmark (label or config). */
  readonly prefetchSize: number;
  readonly noPrefetch: boolean;
  readonly noBackgroundFetch: boolean;
  readonly opaqueXattr: 'trusted' | 'user';
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
  const estargz = await openEstargz(source, { tocDigest: opts.tocDigest, signal: opts.signal });
  const seen = new Set<number>();
  // TOC and footer were fetched to open the layer.
  let fetched = estargz.blobSize - estargz.footer.tocOffset;
  const reader = new ChunkReader({
    source,
    cache: deps.cache,
    log,
    onForeground: () => deps.scheduler.foreground(),
    onAvailable: (c: Chunk) => {
      if (seen.has(c.offset)) return;
      seen.add(c.offset);
      fetched += c.compressedEnd - c.offset;
    },
  });
  const layer = new Layer(estargz, reader, { digest: opts.digest, opaqueXattr: opts.opaqueXattr, log, fetchedSize: () => fetched });

  const all = allChunks(estargz);
  const closed = new AbortController();
  // Every chunk of a batch listens on it while inflating.
  setMaxListeners(0, closed.signal);
  const prefetchEnd = estargz.model.prefetchEnd ?? (estargz.model.noPrefetch ? 0 : opts.prefetchSize);
  const prefetchSet = opts.noPrefetch ? [] : all.filter((w) => w.node.chunks[w.index]!.offset < prefetchEnd);
  const prefetched =
    prefetchSet.length === 0
      ? Promise.resolve()
      : runBatches(prefetchSet, (batch) => reader.ensure(batch, closed.signal)).then(
          () => log.info('prefetch done', { chunks: prefetchSet.length, prefetchEnd }),
          (err: unknown) => log.warn('prefetch failed', { err }),
        );

  if (!opts.noBackgroundFetch) {
    const inPrefetch = new Set(prefetchSet);
    const rest = all.filter((w) => !inPrefetch.has(w));
    const started = Date.now();
    let pending = 0;
    for (const batch of batches(rest)) {
      pending++;
      deps.scheduler
        .submit((signal) => {
          if (closed.signal.aborted) return Promise.resolve();
          const both = AbortSignal.any([signal, closed.signal]);
          setMaxListeners(0, both);
          return reader.ensure(batch, both);
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

/** Every chunk of every regular file once (hardlinks share a node), in blob order. */
function allChunks(e: Estargz): Wanted[] {
  const out: Wanted[] = [];
  for (const node of e.model.nodes) {
    if (node.type !== 'reg') continue;
    for (let index = 0; index < node.chunks.length; index++) out.push({ node, index });
  }
  return out.sort((a, b) => a.node.chunks[a.index]!.offset - b.node.chunks[b.index]!.offset);
}

function batches(want: readonly Wanted[]): Wanted[][] {
  const out: Wanted[][] = [];
  let cur: Wanted[] = [];
  let start = 0;
  for (const w of want) {
    const c = w.node.chunks[w.index]!;
    if (cur.length > 0 && c.compressedEnd - start > BATCH_BYTES) {
      out.push(cur);
      cur = [];
    }
    if (cur.length === 0) start = c.offset;
    cur.push(w);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

async function runBatches(want: readonly Wanted[], run: (b: Wanted[]) => Promise<void>): Promise<void> {
  for (const b of batches(want)) await run(b);
}
