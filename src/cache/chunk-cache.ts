/**
 * Decompressed, verified chunks on disk, keyed by their sha256 digest, so a chunk shared
 * by many layers and images is stored once. Bounded by bytes, least recently used evicted
 * first, and kept across restarts (upstream keeps a private, unbounded cache per layer and
 * deletes it on unmount and at every restart: spec §3.10).
 *
 * Trust: a chunk is served only after its bytes matched its name, on put or on the first
 * read after a reopen; a file torn by a crash or damaged on disk is deleted and reported
 * as a miss. That is why writes need no fsync: the rename makes them atomic, and whatever
 * a crash leaves behind is checked before use.
 *
 * Layout: `<dir>/<hex[0:2]>/<hex>`; writes go to a temp name beside it and are renamed in;
 * `<dir>/index.snapshot` exists only between a clean close and the next open.
 */
import { createHash } from 'node:crypto';
import fs, { unlinkSync } from 'node:fs';
import { mkdir, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { SgError, isSgError } from '../errors.js';
import { sha256Hex } from '../sha256.js';
import { quietLogger, type Logger } from '../log/logger.js';
import { ByteLru } from './byte-lru.js';
import { prepareDirs, scanEntries, type IndexEntry } from './scan.js';
import { takeSnapshot, writeSnapshot } from './snapshot.js';

export interface ChunkCacheOptions {
  readonly dir: string;
  /** Bound on stored bytes; default min(10 GiB, 25% of the free space at open). */
  readonly maxBytes?: number;
  /** How long storing stays off after a write failed (disk full, quota). */
  readonly writePauseMs?: number;
  readonly log?: Logger;
}

export interface ChunkCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  /** Entries found damaged on first read and deleted. */
  readonly corrupt: number;
  readonly writeErrors: number;
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
}

const GiB = 1024 ** 3;
const DIGEST = /^sha256:([0-9a-f]{64})$/;
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

// Index values are plain numbers: the size, or −size−1 while the file is unverified.
// An object per entry would cost a million-entry index tens of MiB more. An empty chunk
// counts as one byte, so that every entry has a cost.
const verified = (size: number): number => size;
const unverified = (size: number): number => -size - 1;
const sizeOf = (v: number): number => (v < 0 ? -v - 1 : v);

export class ChunkCache {
  private readonly index: ByteLru;
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private readonly writing = new Set<Promise<boolean>>();
  /** Whole-entry checks under way for verifiedPath, one per entry. */
  private readonly verifying = new Map<string, Promise<boolean>>();
  private readonly counters = { hits: 0, misses: 0, evictions: 0, corrupt: 0, writeErrors: 0 };
  private readonly snapshotPath: string;
  private closed = false;
  private storingOffUntil = 0;
  private tmpSeq = 0;

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly writePauseMs: number,
    private readonly log: Logger,
  ) {
    this.snapshotPath = join(dir, 'index.snapshot');
    this.index = new ByteLru(maxBytes, (v) => Math.max(1, sizeOf(v)), (hex) => {
      this.counters.evictions++;
      this.unlink(hex);
    });
  }

  static async open(opts: ChunkCacheOptions): Promise<ChunkCache> {
    const started = performance.now();
    await mkdir(opts.dir, { recursive: true });
    const maxBytes = Math.max(1, Math.floor(opts.maxBytes ?? (await defaultMaxBytes(opts.dir))));
    const log = opts.log ?? quietLogger;
    const cache = new ChunkCache(opts.dir, maxBytes, opts.writePauseMs ?? 60_000, log);
    prepareDirs(opts.dir);
    const saved = await takeSnapshot(cache.snapshotPath);
    // Oldest first, so the LRU order matches last use and an over-full cache (a lowered
    // bound) evicts the oldest while loading.
    for (const e of saved ?? (await scanEntries(opts.dir))) cache.index.set(e.hex, unverified(e.size));
    log.info('chunk cache opened', {
      dir: opts.dir,
      from: saved ? 'snapshot' : 'scan',
      entries: cache.index.count,
      bytes: cache.index.bytes,
      maxBytes,
      ms: Math.round(performance.now() - started),
    });
    return cache;
  }

  /** Whether the chunk is indexed (it may still turn out damaged on read). */
  has(digest: string): boolean {
    return this.index.has(hexOf(digest));
  }

  /** `has` for a read about to happen: an absent chunk counts as a miss (a hit is counted by `get`). */
  probe(digest: string): boolean {
    const found = this.has(digest);
    if (!found) this.counters.misses++;
    return found;
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    return this.counted(await this.readEntry(hexOf(digest), 0, Infinity));
  }

  /**
   * `length` bytes of the chunk from `offset` (clamped to its end), reading only those
   * from disk once the entry is verified: a small read of a large chunk then costs a small
   * read. An entry not yet verified in this run is read whole and checked first.
   */
  async getRange(digest: string, offset: number, length: number): Promise<Uint8Array | undefined> {
    return this.counted(await this.readEntry(hexOf(digest), offset, length));
  }

  /**
   * Stores verified bytes; resolves to false when not stored (too large for the bound, or
   * storing paused after a write error). Bytes that do not match the digest: CORRUPT.
   */
  async put(digest: string, bytes: Uint8Array): Promise<boolean> {
    const hex = hexOf(digest);
    await checkContent(hex, bytes, digest);
    return this.store(hex, bytes);
  }

  /**
   * `put` for bytes the caller has just checked against `digest` itself (the chunk reader
   * verifies every chunk it inflates): skips hashing them a second time.
   */
  async putVerified(digest: string, bytes: Uint8Array): Promise<boolean> {
    return this.store(hexOf(digest), bytes);
  }

  /**
   * The chunk from disk, else from `fetch` (checked against the digest, then stored).
   * Concurrent misses of one digest share one fetch. A failed store never fails the read.
   */
  async getOrFetch(digest: string, fetch: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = await this.get(digest);
    if (hit) return hit;
    const hex = hexOf(digest);
    let pending = this.inflight.get(hex);
    if (!pending) {
      pending = this.fetchAndStore(hex, digest, fetch).finally(() => this.inflight.delete(hex));
      this.inflight.set(hex, pending);
    }
    return pending;
  }

  /**
   * The path of the entry's file once its bytes are known to match its name, for a
   * reader that opens the file itself (FUSE passthrough). An entry not yet verified in
   * this run is checked first when it is at most `verifyNowBytes`; a larger one is
   * checked in the background and undefined returned meanwhile. The file may be evicted
   * and deleted at any time after; an open file stays readable.
   */
  async verifiedPath(digest: string, verifyNowBytes = 16 << 20): Promise<string | undefined> {
    const hex = hexOf(digest);
    const v = this.index.get(hex);
    if (v === undefined) return undefined;
    if (v < 0) {
      let check = this.verifying.get(hex);
      if (!check) {
        check = this.read(hex, v, 0, sizeOf(v)).then((bytes) => bytes !== undefined);
        this.verifying.set(hex, check);
        void check.finally(() => this.verifying.delete(hex));
      }
      if (sizeOf(v) > verifyNowBytes || !(await check)) return undefined;
    }
    // The whole entry is served from disk, by whoever opens it.
    this.counters.hits++;
    return this.pathOf(hex);
  }

  /**
   * Stores the concatenation of cached entries `parts` as the entry `digest` (a whole file
   * from its chunks), checking the result against `digest` as it is written. False when a
   * part is missing or damaged, the bytes do not match, or storing is off; never throws.
   */
  assemble(digest: string, parts: readonly string[]): Promise<boolean> {
    const hex = hexOf(digest);
    const v = this.index.peek(hex);
    if (v !== undefined && v >= 0) return Promise.resolve(true);
    const hexes = parts.map(hexOf);
    // As for a chunk: what cannot fit under the bound is not written at all.
    const size = hexes.reduce((n, h) => n + sizeOf(this.index.peek(h) ?? 0), 0);
    if (this.closed || size > this.maxBytes || Date.now() < this.storingOffUntil) return Promise.resolve(false);
    const pending = this.writeAssembled(hex, hexes).finally(() => this.writing.delete(pending));
    this.writing.add(pending);
    return pending;
  }

  /** Settles once the writes in flight now have ended. */
  async writesDone(): Promise<void> {
    await Promise.allSettled(this.writing);
  }

  stats(): ChunkCacheStats {
    return { ...this.counters, entries: this.index.count, bytes: this.index.bytes, maxBytes: this.maxBytes };
  }

  /**
   * Stops storing, waits for fetches and writes in flight, and saves the index so that
   * the next open skips the directory scan. Reads still work after; nothing is stored.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.inflight.values());
    await Promise.allSettled(this.writing);
    await writeSnapshot(this.snapshotPath, this.indexEntries(), this.index.count);
  }

  private async fetchAndStore(hex: string, digest: string, fetch: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const bytes = await fetch();
    await checkContent(hex, bytes, digest);
    await this.store(hex, bytes);
    return bytes;
  }

  private counted(bytes: Uint8Array | undefined): Uint8Array | undefined {
    if (bytes) this.counters.hits++;
    else this.counters.misses++;
    return bytes;
  }

  private async readEntry(hex: string, offset: number, length: number): Promise<Uint8Array | undefined> {
    const v = this.index.get(hex);
    if (v === undefined) return undefined;
    const size = sizeOf(v);
    const from = Math.min(offset, size);
    const take = Math.min(length, size - from);
    if (v < 0) return (await this.read(hex, v, 0, size))?.subarray(from, from + take);
    return this.read(hex, v, from, take);
  }

  /** `size` bytes of the file from `from`; an unverified entry (v < 0) must be read whole. */
  private async read(hex: string, v: number, from: number, size: number): Promise<Uint8Array | undefined> {
    let bytes: Buffer | undefined;
    try {
      bytes = await readExact(this.pathOf(hex), from, size);
    } catch (err) {
      // Evicted meanwhile, or deleted or unreadable behind our back: a miss either way.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn('cannot read cached chunk', { digest: `sha256:${hex}`, err });
      if (this.index.peek(hex) === v) this.drop(hex);
      return undefined;
    }
    if (v >= 0 && bytes) return bytes;
    if (!bytes || (await sha256Hex(bytes)) !== hex) {
      // Concurrent first reads of one damaged entry all see it; it is one damaged entry.
      if (this.index.peek(hex) === v) {
        this.counters.corrupt++;
        this.log.warn('cached chunk does not match its digest; deleted', { digest: `sha256:${hex}`, path: this.pathOf(hex) });
        this.drop(hex);
      }
      return undefined;
    }
    if (this.index.peek(hex) === v) this.index.set(hex, verified(bytes.length));
    return bytes;
  }

  private store(hex: string, bytes: Uint8Array): Promise<boolean> {
    const v = this.index.get(hex);
    if (v !== undefined && v >= 0) return Promise.resolve(true);
    if (this.closed || bytes.length > this.maxBytes || Date.now() < this.storingOffUntil) return Promise.resolve(false);
    const pending = this.write(hex, bytes).finally(() => this.writing.delete(pending));
    this.writing.add(pending);
    return pending;
  }

  private async write(hex: string, bytes: Uint8Array): Promise<boolean> {
    const tmp = this.tempPathOf(hex);
    try {
      await writeExact(tmp, bytes);
      await rename(tmp, this.pathOf(hex));
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      this.writeFailed(err);
      return false;
    }
    this.index.set(hex, verified(bytes.length));
    return true;
  }

  private async writeAssembled(hex: string, parts: readonly string[]): Promise<boolean> {
    const tmp = this.tempPathOf(hex);
    const hash = createHash('sha256');
    let fd: number | undefined;
    let size = 0;
    try {
      fd = await openFd(tmp, 'wx');
      for (const part of parts) {
        const v = this.index.peek(part);
        const bytes = v === undefined ? undefined : await this.read(part, v, 0, sizeOf(v));
        if (!bytes) throw new SgError('NOT_FOUND', 'a part is no longer cached', { part: `sha256:${part}` });
        hash.update(bytes);
        await writeAll(fd, bytes, size);
        size += bytes.length;
      }
      await closeFd(fd);
      fd = undefined;
      const actual = hash.digest('hex');
      if (actual !== hex) throw new SgError('CORRUPT', 'assembled bytes do not match their digest', { digest: `sha256:${hex}`, actual: `sha256:${actual}`, size });
      await rename(tmp, this.pathOf(hex));
    } catch (err) {
      if (fd !== undefined) await closeFd(fd).catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
      if (isSgError(err)) this.log.warn('cannot assemble cache entry', { digest: `sha256:${hex}`, err });
      else this.writeFailed(err);
      return false;
    }
    this.index.set(hex, verified(size));
    return true;
  }

  /** Stops storing for a while, with one warning per pause: reads go on from the source. */
  private writeFailed(err: unknown): void {
    this.counters.writeErrors++;
    const now = Date.now();
    if (now < this.storingOffUntil) return;
    this.storingOffUntil = now + this.writePauseMs;
    const errno = (err as NodeJS.ErrnoException).code;
    const msg = errno && NO_SPACE.has(errno) ? 'chunk cache disk is full' : 'chunk cache write failed';
    this.log.warn(`${msg}; not storing chunks for a while`, { dir: this.dir, errno, pauseMs: this.writePauseMs, err });
  }

  private *indexEntries(): Generator<IndexEntry> {
    for (const [hex, v] of this.index) yield { hex, size: sizeOf(v) };
  }

  /** Forgets an entry and deletes its file. */
  private drop(hex: string): void {
    this.index.delete(hex);
    this.unlink(hex);
  }

  private unlink(hex: string): void {
    try {
      unlinkSync(this.pathOf(hex));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn('cannot delete cached chunk', { digest: `sha256:${hex}`, err });
    }
  }

  /**
   * A fresh name to write an entry under before renaming it in. Beside the final name, so
   * that the rename stays in one directory: a rename across directories takes the
   * filesystem-wide rename lock, and creating every file in one directory serialises
   * thousands of small-chunk writes on its lock. A crash leaves the temp name behind; the
   * scan at the next open deletes it.
   */
  private tempPathOf(hex: string): string {
    return `${this.pathOf(hex)}.${this.tmpSeq++}.tmp`;
  }

  private pathOf(hex: string): string {
    return `${this.dir}/${hex.slice(0, 2)}/${hex}`;
  }
}

async function defaultMaxBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return Math.min(10 * GiB, Math.floor((fs.bavail * fs.bsize) / 4));
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new SgError('INVALID_ARGUMENT', 'chunk digest is not sha256:<64 hex>', { digest });
  return m[1]!;
}

async function checkContent(hex: string, bytes: Uint8Array, digest: string): Promise<void> {
  const actual = await sha256Hex(bytes);
  if (actual !== hex) throw new SgError('CORRUPT', 'chunk bytes do not match their digest', { digest, size: bytes.length, actual: `sha256:${actual}` });
}

const openFd = promisify(fs.open);
const readFd = promisify(fs.read);
const writeFd = promisify(fs.write);
const closeFd = promisify(fs.close);

/** Writes a new file (it must not exist) in as few write(2) calls as the kernel allows. */
async function writeExact(path: string, bytes: Uint8Array): Promise<void> {
  const fd = await openFd(path, 'wx');
  try {
    await writeAll(fd, bytes, 0);
  } finally {
    await closeFd(fd);
  }
}

/** All of `bytes` at `position` of the open file. */
async function writeAll(fd: number, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await writeFd(fd, bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Exactly `size` bytes of the file from `offset`, or undefined when it is shorter. Plain
 * descriptors, not FileHandles: this is the warm read path, once per kernel read request.
 */
async function readExact(path: string, offset: number, size: number): Promise<Buffer | undefined> {
  const fd = await openFd(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(size);
    for (let done = 0; done < size; ) {
      const { bytesRead } = await readFd(fd, buf, done, size - done, offset + done);
      if (bytesRead === 0) return undefined;
      done += bytesRead;
    }
    return buf;
  } finally {
    await closeFd(fd);
  }
}
