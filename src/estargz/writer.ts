/**
 * tar → eStargz, in the layout the reference writer produces:
 *
 *   [headers…][chunk 1][chunk 2 + tar padding + next headers…] … [TOC member][footer]
 *
 * Every chunk of a regular file starts a new gzip member, so a reader can inflate it from
 * its TOC `offset`; an entry's tar header sits at the end of the member before. The TOC
 * member is a tar holding `stargz.index.json` plus the end-of-archive, so the whole blob
 * inflates to a valid tar. Input headers are copied byte for byte (the reference
 * re-encodes them; a copy loses nothing).
 *
 * Memory stays bounded whatever the layer size: the input is read from a seekable file
 * (spooled first when it is a stream or gzip), and at most `concurrency` members
 * (≤ chunk size + 4 MiB of headers each) are being compressed at once, on libuv's
 * thread pool, written out in order. Same input and options → same bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SgError } from '../errors.js';
import { encodeFooter } from './footer.js';
import { buildModel } from './model.js';
import { formatModtime } from './modtime.js';
import { LANDMARK_CONTENTS, TOC_TAR_NAME } from './names.js';
import { LANDMARK, planOrder } from './order.js';
import { END_OF_ARCHIVE, encodeFileHeader, paddingFor } from './tar.js';
import { scanTar, withTarFile, type TarEntry, type TarFile } from './tar-file.js';
import { decodeToc } from './toc.js';
import { marshalToc, type TocJsonEntry } from './toc-json.js';

export const DEFAULT_CHUNK_SIZE = 4 << 20;
/** Go's gzip.BestCompression, the reference default. */
export const DEFAULT_LEVEL = 9;
/**
 * Header bytes after which an open member is closed anyway, bounding memory for layers with
 * many small entries. The extra member boundary is harmless: readers inflate across members.
 */
const MAX_HEADER_RUN = 4 << 20;

export interface BuildOptions {
  /** Largest chunk of a regular file in one gzip member (default 4 MiB). */
  readonly chunkSize?: number;
  /** gzip level 0–9 (default 9, as the reference). */
  readonly level?: number;
  /** Files to put first, followed by `.prefetch.landmark`; `x`, `/x` and `./x` are the same. */
  readonly prioritizedFiles?: readonly string[];
  /** Record prioritized files missing from the tar instead of failing. */
  readonly allowMissingPrioritized?: boolean;
  /** Where to spool stream or gzip input (default: the OS temp dir). */
  readonly tmpDir?: string;
  /** Members compressed at once (default: CPUs + 1). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

export interface BuildResult {
  /** sha256 of the TOC JSON: the layer's `containerd.io/snapshot/stargz/toc.digest`. */
  readonly tocDigest: string;
  /** sha256 of the blob inflated as one gzip stream (the layer's diffID). */
  readonly diffID: string;
  /** sha256 of the blob. */
  readonly blobDigest: string;
  readonly size: number;
  readonly missedPrioritizedFiles: readonly string[];
}

const TOC_TYPES: Readonly<Record<string, string>> = { '0': 'reg', '7': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

/**
 * Converts a tar (plain or gzip; a path or a stream) into an eStargz blob written to
 * `output` (a path, replaced; or a stream, left open).
 */
export async function buildEstargz(input: string | Readable, output: string | Writable, opts: BuildOptions = {}): Promise<BuildResult> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const level = opts.level ?? DEFAULT_LEVEL;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new SgError('INVALID_ARGUMENT', 'chunk size must be a positive integer', { chunkSize });
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new SgError('INVALID_ARGUMENT', 'gzip level must be 0–9', { level });

  return withTarFile(input, opts.tmpDir, async (tar) => {
    const entries = await scanTar(tar, opts.signal);
    const plan = planOrder(
      entries.map((e) => e.header),
      opts.prioritizedFiles ?? [],
      opts.allowMissingPrioritized ?? false,
    );
    const sink = await openSink(output);
    try {
      const members = new MemberWriter(sink, level, opts.concurrency ?? availableParallelism() + 1);
      const toc = new TocBuilder();
      for (const i of plan.order) {
        opts.signal?.throwIfAborted();
        if (i === LANDMARK) await writeLandmark(plan.landmark, members, toc);
        else await writeEntry(entries[i]!, tar, chunkSize, members, toc);
        if (members.openBytes >= chunkSize + MAX_HEADER_RUN) await members.cut();
      }
      await members.flush();
      const tocOffset = members.written;
      const json = marshalToc(toc.finish(members.starts));
      checkOwnToc(json, tocOffset);
      members.append(Buffer.concat([encodeFileHeader(TOC_TAR_NAME, json.length), json, paddingFor(json.length), END_OF_ARCHIVE]));
      await members.flush();
      await members.writeRaw(encodeFooter(tocOffset));
      await sink.close(true);
      return {
        tocDigest: sha256(json),
        diffID: 'sha256:' + members.diffHash.digest('hex'),
        blobDigest: 'sha256:' + members.blobHash.digest('hex'),
        size: members.written,
        missedPrioritizedFiles: plan.missed,
      };
    } catch (err) {
      await sink.close(false);
      throw err;
    }
  });
}

async function writeLandmark(name: string, members: MemberWriter, toc: TocBuilder): Promise<void> {
  const data = Buffer.from([LANDMARK_CONTENTS]);
  members.append(encodeFileHeader(name, data.length));
  const entry: TocJsonEntry = { name, type: 'reg', size: data.length, digest: sha256(data), chunkDigest: sha256(data) };
  toc.add(entry, await members.cut());
  members.append(data);
  members.append(paddingFor(data.length));
}

async function writeEntry(e: TarEntry, tar: TarFile, chunkSize: number, members: MemberWriter, toc: TocBuilder): Promise<void> {
  const h = e.header;
  const type = TOC_TYPES[h.typeflag];
  if (type === undefined) {
    throw new SgError('INVALID_ARGUMENT', 'unsupported tar entry type', { entry: h.name, typeflag: h.typeflag, offset: e.headerStart });
  }
  const entry: TocJsonEntry = {
    name: h.name,
    type,
    modtime: formatModtime(h.mtime),
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    userName: toc.userNameIfChanged(h.uid, h.uname),
    groupName: toc.groupNameIfChanged(h.gid, h.gname),
    xattrs: h.xattrs,
  };
  if (type === 'hardlink' || type === 'symlink') entry.linkName = h.linkName;
  if (type === 'char' || type === 'block') {
    entry.devMajor = h.devMajor;
    entry.devMinor = h.devMinor;
  }
  members.append(await tar.read(e.headerStart, e.dataStart - e.headerStart));
  if (type !== 'reg') {
    toc.add(entry, undefined);
    return;
  }

  entry.size = h.size;
  const whole = createHash('sha256');
  let current = entry;
  for (let done = 0; done < h.size; ) {
    const n = Math.min(chunkSize, h.size - done);
    const data = await tar.read(e.dataStart + done, n);
    if (data.length !== n) throw new SgError('INVALID_ARGUMENT', 'input tar ends inside a file', { entry: h.name, offset: e.dataStart + done });
    if (n === chunkSize) current.chunkSize = chunkSize;
    current.chunkOffset = done;
    current.chunkDigest = sha256(data);
    if (n < h.size) whole.update(data);
    toc.add(current, await members.cut());
    members.append(data);
    done += n;
    if (done < h.size) current = { name: h.name, type: 'chunk' };
  }
  // A one-chunk file's digest is its chunk digest; an empty file gets the digest of nothing.
  entry.digest = h.size === 0 ? sha256(Buffer.alloc(0)) : h.size <= chunkSize ? entry.chunkDigest! : 'sha256:' + whole.digest('hex');
  if (h.size === 0) toc.add(entry, undefined);
  members.append(paddingFor(h.size));
}

/**
 * TOC entries in blob order. Offsets are member ids until the members are written;
 * user and group names are emitted only when they change for an id, as the reference does.
 */
class TocBuilder {
  private readonly entries: TocJsonEntry[] = [];
  private readonly memberOf = new Map<TocJsonEntry, number>();
  private readonly users = new Map<number, string>();
  private readonly groups = new Map<number, string>();

  add(e: TocJsonEntry, member: number | undefined): void {
    this.entries.push(e);
    if (member !== undefined) this.memberOf.set(e, member);
  }

  userNameIfChanged(uid: number, name: string): string {
    return ifChanged(this.users, uid, name);
  }

  groupNameIfChanged(gid: number, name: string): string {
    return ifChanged(this.groups, gid, name);
  }

  finish(memberStarts: readonly number[]): TocJsonEntry[] {
    for (const [e, member] of this.memberOf) e.offset = memberStarts[member]!;
    return this.entries;
  }
}

function ifChanged(seen: Map<number, string>, id: number, name: string): string {
  if (name === '' || seen.get(id) === name) return '';
  seen.set(id, name);
  return name;
}

/** Our own reader must accept what we write; a tar that makes a hostile TOC is bad input. */
function checkOwnToc(json: Buffer, tocOffset: number): void {
  try {
    buildModel(decodeToc(JSON.parse(json.toString('utf8')), { blobSize: tocOffset + 1, tocOffset, maxEntries: Number.MAX_SAFE_INTEGER }));
  } catch (err) {
    if (!(err instanceof SgError)) throw err;
    throw new SgError('INVALID_ARGUMENT', `input tar cannot make a valid eStargz: ${err.message}`, err.context, { cause: err });
  }
}

const gzip = promisify(zlib.gzip);

/**
 * gzip members compressed in parallel and written in order. `cut()` ends the open member
 * and returns the id of the next one; `starts[id]` is its blob offset once written.
 */
class MemberWriter {
  readonly diffHash: Hash = createHash('sha256');
  readonly blobHash: Hash = createHash('sha256');
  readonly starts: number[] = [];
  written = 0;
  private parts: Buffer[] = [];
  private partsLength = 0;
  private nextId = 0;
  private readonly pending: { id: number; out: Promise<Buffer> }[] = [];

  constructor(
    private readonly sink: Sink,
    private readonly level: number,
    private readonly concurrency: number,
  ) {}

  get openBytes(): number {
    return this.partsLength;
  }

  append(b: Buffer): void {
    if (b.length === 0) return;
    this.diffHash.update(b);
    this.parts.push(b);
    this.partsLength += b.length;
  }

  async cut(): Promise<number> {
    if (this.partsLength > 0) {
      const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLength);
      this.parts = [];
      this.partsLength = 0;
      const out = gzip(data, { level: this.level, chunkSize: 256 << 10 });
      out.catch(() => undefined); // awaited in order below; don't let a later failure go unhandled meanwhile
      this.pending.push({ id: this.nextId++, out });
      while (this.pending.length > this.concurrency) await this.writeOldest();
    }
    return this.nextId;
  }

  /** Ends the open member and writes everything pending. */
  async flush(): Promise<void> {
    await this.cut();
    while (this.pending.length > 0) await this.writeOldest();
  }

  /** Bytes outside any member we compress (the footer). */
  async writeRaw(b: Buffer): Promise<void> {
    this.blobHash.update(b);
    await this.sink.write(b);
    this.written += b.length;
  }

  private async writeOldest(): Promise<void> {
    const { id, out } = this.pending.shift()!;
    const bytes = await out;
    this.starts[id] = this.written;
    await this.writeRaw(bytes);
  }
}

interface Sink {
  write(b: Buffer): Promise<void>;
  /** `ok = false`: the build failed; a file output is removed. */
  close(ok: boolean): Promise<void>;
}

async function openSink(output: string | Writable): Promise<Sink> {
  if (typeof output !== 'string') {
    return {
      write: (b) =>
        new Promise<void>((resolve, reject) => {
          output.write(b, (err) => (err ? reject(new SgError('IO', 'cannot write output stream', {}, { cause: err })) : resolve()));
        }),
      close: async () => {},
    };
  }
  const fh = await open(output, 'w').catch((err: unknown) => {
    throw new SgError('IO', 'cannot create output file', { path: output }, { cause: err });
  });
  let closed = false;
  return {
    async write(b) {
      try {
        for (let done = 0; done < b.length; ) done += (await fh.write(b, done, b.length - done)).bytesWritten;
      } catch (err) {
        throw new SgError('IO', 'cannot write output file', { path: output }, { cause: err });
      }
    },
    async close(ok) {
      if (closed) return;
      closed = true;
      await fh.close();
      if (!ok) await rm(output, { force: true });
    },
  };
}

function sha256(b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}
