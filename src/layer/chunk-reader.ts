/**
 * The read path of a layer in one place: file range → chunks → memory (recent chunks) →
 * disk chunk cache → blob source (ranged fetch of adjacent missing chunks in one request,
 * inflate, verify) → bytes. Nothing here knows FUSE or IPFS.
 *
 * - Concurrent reads of one chunk share one fetch (in-flight map keyed by chunk digest).
 * - A file read sequentially gets its next chunks fetched ahead of the reader.
 * - Every on-demand read marks foreground activity, which pauses background fetching.
 */
import { LRUCache } from 'lru-cache';
import { chunkRange, decodeChunk, type Chunk, type LayerNode } from '../estargz/index.js';
import type { BlobSource } from '../source/blob-source.js';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { Logger } from '../log/logger.js';
import { planRead, type Slice } from './read-plan.js';
import type { RangeBuffers } from './range-buffers.js';

export interface ChunkReaderOptions {
  readonly source: BlobSource;
  readonly cache: ChunkCache;
  readonly log: Logger;
  /** Called on every on-demand read (pauses background work). */
  readonly onForeground?: () => void;
  /** Called once per compressed chunk range this layer has available (fetched or found cached). */
  readonly onAvailable?: (c: Chunk) => void;
  /** Decompressed bytes kept in memory for repeat and sequential reads. */
  readonly memoryBytes?: number;
  /** How far ahead of a sequential reader to fetch, in decompressed bytes. */
  readonly readaheadBytes?: number;
  /** Largest compressed range fetched in one request when chunks are coalesced. */
  readonly maxFetchBytes?: number;
  /**
   * Fetch granularity in compressed bytes (`[blob] chunk_size`, upstream's 50000): a fetch
   * is widened to these boundaries and the other chunks wholly inside it are kept too, so
   * reading one small file brings its neighbours in the blob along in the same request.
   * 0: fetch exactly the chunks asked for.
   */
  readonly fetchAlignBytes?: number;
  /** The layer's chunks lying wholly inside [start, end) of the blob, in blob order. */
  readonly chunksWithin?: (start: number, end: number) => Chunk[];
  /** Reused buffers for fetched ranges (shared by the layers of one process). */
  readonly rangeBuffers?: RangeBuffers;
}

const noop = (): void => undefined;

/** How far from the previous read's end a read still counts as sequential (out-of-order readahead). */
const SEQUENTIAL_SLACK = 4 << 20;
/** A read at least this large counts as part of a readahead stream even if slightly out of order. */
const READAHEAD_REQUEST = 128 << 10;
/** Files whose last read end is remembered: the ones being read now, not every file ever read. */
const TRACKED_READERS = 1024;

export interface Wanted {
  readonly node: LayerNode;
  readonly index: number;
}

/**
 * A chunk whose fetch just failed slowly (source dead past its timeout) fails once more at
 * once, within this window: the kernel re-asks for a page whose readahead failed, and
 * without this a single read(2) would wait out the fetch timeout twice. The next request
 * after that fetches again, so a source that is back is used at once.
 */
const FAILURE_MEMORY_MS = 1000;
const SLOW_FAILURE_MS = 1000;

export class ChunkReader {
  private readonly failed = new Map<string, { err: unknown; at: number }>();
  private readonly memory: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  /** End offset of the last read per node id, to detect sequential readers. */
  private readonly lastEnd = new LRUCache<number, number>({ max: TRACKED_READERS });
  private readonly readaheadBytes: number;
  private readonly maxFetchBytes: number;

  constructor(private readonly opts: ChunkReaderOptions) {
    this.memory = new LRUCache<string, Buffer>({ maxSize: opts.memoryBytes ?? 64 << 20, sizeCalculation: (b) => Math.max(1, b.length) });
    this.readaheadBytes = opts.readaheadBytes ?? 32 << 20;
    this.maxFetchBytes = opts.maxFetchBytes ?? 16 << 20;
  }

  /** Up to `length` bytes of a regular file at `offset` (fewer only at end of file). */
  async read(node: LayerNode, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    this.opts.onForeground?.();
    const starts = node.chunks.map((c) => c.chunkOffset);
    const slices = planRead(starts, node.size, offset, length);
    if (slices.length === 0) return Buffer.alloc(0);
    const end = offset + slices.reduce((n, s) => n + s.take, 0);
    // The kernel keeps several reads of its readahead window in flight on different
    // threads, so a sequential reader's requests arrive slightly out of order.
    // Small reads count only when they continue exactly, so random 4 KiB readers never
    // trigger a fetch of whole chunks ahead.
    const last = this.lastEnd.get(node.id);
    const sequential =
      offset === 0 || offset === last || (last !== undefined && length >= READAHEAD_REQUEST && offset >= last - SEQUENTIAL_SLACK && offset <= last + SEQUENTIAL_SLACK);
    this.lastEnd.set(node.id, sequential && last !== undefined ? Math.max(last, end) : end);

    const direct = await this.fromDisk(node, slices, sequential);
    if (direct) return direct;
    const want: Wanted[] = slices.map((s) => ({ node, index: s.chunk }));
    // A chunk still to arrive (in flight or not yet asked for) keeps this read waiting.
    const waiting = want.some((w) => {
      const c = w.node.chunks[w.index]!;
      return this.inflight.has(c.digest) || this.missing(c);
    });
    const loading = this.load(want, signal);
    if (sequential) {
      // Fetch ahead so that the source stays busy while a sequential reader consumes, but
      // only once this read's own chunks are in: ranges fetched at the same time share the
      // source's bandwidth, and more of them would only delay the ones the reader waits for.
      const ahead = () => this.readAhead(node, slices[slices.length - 1]!.chunk);
      if (waiting) loading.then(ahead, ahead);
      else ahead();
    }
    const chunks = await loading;

    if (slices.length === 1) {
      const s = slices[0]!;
      return chunks[0]!.subarray(s.skip, s.skip + s.take);
    }
    return Buffer.concat(slices.map((s, i) => chunks[i]!.subarray(s.skip, s.skip + s.take)));
  }

  /**
   * A read whose chunks only the disk cache holds: just the wanted pieces of the cache
   * files, not whole chunks into memory. A 4 KiB random read of a 4 MiB chunk then costs
   * a 4 KiB read, and a sequential reader of a cached file gets its bytes in the kernel's
   * request size with no chunk-sized buffer to allocate and collect per chunk. The kernel
   * reads the cache files ahead itself. Undefined when a chunk is in memory, in flight,
   * not cached, or turns out damaged (the caller then loads it the normal way).
   */
  private async fromDisk(node: LayerNode, slices: readonly Slice[], sequential: boolean): Promise<Buffer | undefined> {
    const chunks = slices.map((s) => node.chunks[s.chunk]!);
    for (const c of chunks) {
      if (this.memory.has(c.digest) || this.inflight.has(c.digest) || !this.opts.cache.has(c.digest)) return undefined;
    }
    if (sequential) this.readAhead(node, slices[slices.length - 1]!.chunk);
    const pieces = await Promise.all(slices.map((s, i) => this.opts.cache.getRange(chunks[i]!.digest, s.skip, s.take)));
    for (let i = 0; i < pieces.length; i++) {
      if (pieces[i]?.length !== slices[i]!.take) return undefined;
      this.opts.onAvailable?.(chunks[i]!);
    }
    const bufs = pieces.map((p) => Buffer.from(p!.buffer, p!.byteOffset, p!.byteLength));
    return bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
  }

  /** Makes chunks available (cache or fetch) without reading them or keeping them in memory. */
  async ensure(want: readonly Wanted[], signal?: AbortSignal): Promise<void> {
    await this.load(want, signal, false);
  }

  /** Verified bytes of each wanted chunk, in order. */
  private async load(want: readonly Wanted[], signal?: AbortSignal, keep = true): Promise<Buffer[]> {
    const out = new Array<Promise<Buffer> | Buffer>(want.length);
    const missing: number[] = [];
    for (let i = 0; i < want.length; i++) {
      const c = want[i]!.node.chunks[want[i]!.index]!;
      const mem = this.memory.get(c.digest);
      if (mem) {
        out[i] = mem;
        continue;
      }
      const pending = this.inflight.get(c.digest);
      if (pending) {
        out[i] = pending;
        continue;
      }
      const failed = this.failed.get(c.digest);
      if (failed) {
        this.failed.delete(c.digest);
        if (Date.now() - failed.at < FAILURE_MEMORY_MS) {
          out[i] = Promise.reject(failed.err);
          continue;
        }
      }
      if (this.opts.cache.probe(c.digest)) {
        out[i] = this.fromCache(want[i]!, keep);
        continue;
      }
      missing.push(i);
    }
    for (const group of this.groups(want, missing)) {
      const fetched = this.fetchGroup(group.map((i) => want[i]!), signal, keep);
      group.forEach((i, k) => (out[i] = fetched[k]!));
    }
    return Promise.all(out);
  }

  /** Cached bytes, or (if the entry turned out damaged) a fresh fetch. */
  private fromCache(w: Wanted, keep: boolean): Promise<Buffer> {
    const c = w.node.chunks[w.index]!;
    const p = this.opts.cache.get(c.digest).then((bytes) => {
      if (bytes === undefined) return this.fetchGroup([w], undefined, keep)[0]!;
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (keep) this.memory.set(c.digest, buf);
      this.opts.onAvailable?.(c);
      return buf;
    });
    return this.track(c.digest, p);
  }

  /**
   * Splits missing chunks into runs whose compressed ranges touch, each at most
   * maxFetchBytes, so that one request serves a run.
   */
  private groups(want: readonly Wanted[], missing: readonly number[]): number[][] {
    const out: number[][] = [];
    let cur: number[] = [];
    let start = 0;
    let end = -1;
    for (const i of missing) {
      const c = want[i]!.node.chunks[want[i]!.index]!;
      const r = chunkRange(c);
      if (cur.length > 0 && r.offset <= end && r.offset + r.length - start <= this.maxFetchBytes) {
        cur.push(i);
        end = Math.max(end, r.offset + r.length);
        continue;
      }
      if (cur.length > 0) out.push(cur);
      cur = [i];
      start = r.offset;
      end = r.offset + r.length;
    }
    if (cur.length > 0) out.push(cur);
    return out;
  }

  /**
   * Chunks that come along with a fetch of [start, end) once it is widened to the fetch
   * granularity: wholly inside the added margins, and nowhere else yet. (A run covers its
   * own range without gaps, so only the margins can hold other chunks.) `seen`: the run's.
   */
  private neighbours(start: number, end: number, seen: Set<string>): Chunk[] {
    const align = this.opts.fetchAlignBytes ?? 0;
    const within = this.opts.chunksWithin;
    if (align <= 0 || !within) return [];
    const margins = [...within(Math.floor(start / align) * align, start), ...within(end, Math.ceil(end / align) * align)];
    return margins.filter((c) => {
      if (seen.has(c.digest) || !this.missing(c)) return false;
      seen.add(c.digest);
      return true;
    });
  }

  /**
   * One ranged read for a run of chunks, widened by its neighbours; each chunk is decoded,
   * verified and cached as soon as its bytes have arrived, not when the whole range has, so
   * a sequential reader waiting at the front of a long range is served early. A reader
   * (keep) gets the bytes as soon as they are verified while the cache write goes on; the
   * chunk stays in flight until it is stored, so nobody fetches it again meanwhile.
   * Background work (not keep) resolves only once the chunk is stored.
   */
  private fetchGroup(run: readonly Wanted[], signal: AbortSignal | undefined, keep: boolean): Promise<Buffer>[] {
    const chunks = run.map((w) => w.node.chunks[w.index]!);
    const runStart = Math.min(...chunks.map((c) => c.offset));
    const runEnd = Math.max(...chunks.map((c) => c.compressedEnd));
    const extras = this.neighbours(runStart, runEnd, new Set(chunks.map((c) => c.digest)));
    const start = Math.min(runStart, ...extras.map((c) => c.offset));
    const end = Math.max(runEnd, ...extras.map((c) => c.compressedEnd));
    const started = Date.now();
    const arrivals = new Arrivals(start, [...chunks, ...extras]);
    const into = this.opts.rangeBuffers?.take(end - start);
    const bytes = this.opts.source.readRange(start, end - start, signal, { into, onProgress: (buf, filled) => arrivals.progress(buf, filled) });
    bytes.then(
      (buf) => arrivals.progress(buf, buf.length),
      (err: unknown) => arrivals.fail(err),
    );
    const log = this.opts.log;
    if (log.enabled('debug')) log.debug('chunk fetch', { blob: this.opts.source.describe, offset: start, length: end - start, chunks: chunks.length, neighbours: extras.length });
    const fetched = { start, started, signal };
    // Neighbours are stored for later reads; nobody waits for them.
    const settled = extras.map((c) => this.settle(c, `(chunk at blob offset ${c.offset})`, arrivals.of(c), fetched, false));
    const out = run.map((w, k) => this.settle(chunks[k]!, w.node.name, arrivals.of(chunks[k]!), fetched, keep));
    // The range buffer is free again once the read has ended and every chunk's decode has
    // finished reading it, whichever way each went.
    if (into) {
      const ended = [bytes, ...settled, ...out].map((p) => p.then(noop, noop));
      void Promise.all(ended).then(() => this.opts.rangeBuffers!.give(into));
    }
    return out;
  }

  /** Decodes, verifies and stores one chunk of a fetched range; in flight until stored. */
  private settle(
    c: Chunk,
    entry: string,
    arrived: Promise<Uint8Array>,
    f: { start: number; started: number; signal: AbortSignal | undefined },
    keep: boolean,
  ): Promise<Buffer> {
    const decoded = arrived.then(async (all) => {
      const r = chunkRange(c);
      const buf = await decodeChunk(all.subarray(r.offset - f.start, r.offset - f.start + r.length), c, { entry, blob: this.opts.source.describe }, f.signal);
      if (keep) this.memory.set(c.digest, buf);
      this.opts.onAvailable?.(c);
      return buf;
    });
    const stored = decoded.then((buf) =>
      this.opts.cache.putVerified(c.digest, buf).then(
        () => buf,
        (err: unknown) => {
          this.opts.log.warn('chunk cache put failed', { err });
          return buf;
        },
      ),
    );
    decoded.then(
      () => this.failed.delete(c.digest),
      (err: unknown) => {
        // Only slow failures are worth remembering (a refused connection fails fast by
        // itself), and a fetch we cancelled (preempted background work) says nothing.
        if (!f.signal?.aborted && Date.now() - f.started >= SLOW_FAILURE_MS) this.failed.set(c.digest, { err, at: Date.now() });
      },
    );
    this.track(c.digest, decoded, stored);
    return keep ? decoded : stored;
  }

  /** Neither in memory, nor in flight, nor in the disk cache: reading it means a fetch. */
  private missing(c: Chunk): boolean {
    return !this.memory.has(c.digest) && !this.inflight.has(c.digest) && !this.opts.cache.has(c.digest);
  }

  /** `p` answers concurrent loads of the digest until `until` (default `p`) settles. */
  private track(digest: string, p: Promise<Buffer>, until: Promise<unknown> = p): Promise<Buffer> {
    this.inflight.set(digest, p);
    const clear = () => {
      if (this.inflight.get(digest) === p) this.inflight.delete(digest);
    };
    until.then(clear, clear);
    return p;
  }

  /**
   * Keeps the chunks after `last` of a sequentially read file coming, without waiting.
   * The window is topped up only when the next chunk is missing or half of it is, so
   * that adjacent missing chunks go out as one larger request rather than one each.
   */
  private readAhead(node: LayerNode, last: number): void {
    const next: number[] = [];
    let bytes = 0;
    let window = 0;
    for (let i = last + 1; i < node.chunks.length && bytes < this.readaheadBytes; i++) {
      const c = node.chunks[i]!;
      bytes += c.chunkSize;
      window++;
      // Cached chunks are read from disk when asked for, in the kernel's request size.
      if (this.missing(c)) next.push(i);
    }
    if (next.length === 0) return;
    if (next[0] !== last + 1 && next.length * 2 < window) return;
    this.load(
      next.map((index) => ({ node, index })),
      undefined,
    ).catch((err: unknown) => this.opts.log.debug('readahead failed', { entry: node.name, err }));
  }
}

/**
 * When each chunk of one ranged read has arrived: the chunk's promise resolves with the
 * buffer being filled once the bytes up to the chunk's end are in (bytes that a failed
 * attempt delivered are only ever used after their digest check), and rejects if the read
 * fails first.
 */
class Arrivals {
  private readonly waiting: { end: number; resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }[];
  /** By chunk object, not digest: one range can hold equal chunks (a file of zeros). */
  private readonly byChunk = new Map<Chunk, Promise<Uint8Array>>();
  private next = 0;

  constructor(start: number, chunks: readonly Chunk[]) {
    const sorted = [...new Set(chunks)].sort((a, b) => a.compressedEnd - b.compressedEnd);
    this.waiting = sorted.map((c) => {
      let resolve!: (b: Uint8Array) => void;
      let reject!: (e: unknown) => void;
      this.byChunk.set(c, new Promise<Uint8Array>((res, rej) => ((resolve = res), (reject = rej))));
      return { end: c.compressedEnd - start, resolve, reject };
    });
  }

  of(c: Chunk): Promise<Uint8Array> {
    return this.byChunk.get(c)!;
  }

  progress(bytes: Uint8Array, filled: number): void {
    while (this.next < this.waiting.length && this.waiting[this.next]!.end <= filled) this.waiting[this.next++]!.resolve(bytes);
  }

  fail(err: unknown): void {
    while (this.next < this.waiting.length) this.waiting[this.next++]!.reject(err);
  }
}
