/**
 * The writer's view of its input: an uncompressed tar in a file it can seek in (the
 * prioritized files are written first, so the input is read out of order), scanned once
 * for its headers.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { SgError } from '../errors.js';
import { parseEntryAt, type TarHeader } from './tar.js';

/** Small reads (headers) come from one cached window; large ones (chunk data) go straight to the file. */
const WINDOW = 256 << 10;

export class TarFile {
  private winStart = 0;
  private win: Buffer = Buffer.alloc(0);

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly path: string,
  ) {}

  static async open(path: string): Promise<TarFile> {
    const fh = await open(path, 'r');
    return new TarFile(fh, (await fh.stat()).size, path);
  }

  close(): Promise<void> {
    return this.fh.close();
  }

  /** Up to `length` bytes at `pos` (fewer only at the end of the file). */
  async read(pos: number, length: number): Promise<Buffer> {
    const end = Math.min(pos + length, this.size);
    if (pos >= this.winStart && end <= this.winStart + this.win.length) {
      return this.win.subarray(pos - this.winStart, end - this.winStart);
    }
    if (end - pos >= WINDOW / 2) return this.readDirect(pos, end - pos);
    this.win = await this.readDirect(pos, Math.min(WINDOW, this.size - pos));
    this.winStart = pos;
    return this.win.subarray(0, end - pos);
  }

  private async readDirect(pos: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, pos + done);
      if (bytesRead === 0) throw new SgError('IO', 'input tar ended early', { path: this.path, offset: pos + done });
      done += bytesRead;
    }
    return buf;
  }
}

export interface TarEntry {
  readonly header: TarHeader;
  /** Archive offset of the first header block (extension headers included). */
  readonly headerStart: number;
  readonly dataStart: number;
}

/** Every entry's header and where its bytes are, in archive order. */
export async function scanTar(tar: TarFile, signal?: AbortSignal): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  let pos = 0;
  let want = 1536;
  for (;;) {
    signal?.throwIfAborted();
    const buf = await tar.read(pos, want);
    const step = parseEntryAt(buf, 0, pos + buf.length >= tar.size, pos);
    if (step.kind === 'end') return entries;
    if (step.kind === 'more') {
      want = Math.max(step.need, want * 2);
      continue;
    }
    if (pos + step.next > tar.size) {
      throw new SgError('INVALID_ARGUMENT', 'input tar ends inside an entry', { path: tar.path, entry: step.header.name, offset: pos });
    }
    entries.push({ header: step.header, headerStart: pos + step.headerStart, dataStart: pos + step.dataStart });
    pos += step.next;
    want = 1536;
  }
}

/**
 * Runs `f` on a seekable, uncompressed copy of the input: the file itself when it is a
 * plain tar, else a temp file (gzip input is inflated on the way) removed afterwards.
 */
export async function withTarFile<T>(input: string | Readable, tmpDir: string | undefined, f: (tar: TarFile) => Promise<T>): Promise<T> {
  let dir: string | undefined;
  try {
    let path: string;
    if (typeof input === 'string') {
      path = (await isGzip(input)) ? await spool(createReadStream(input), true) : input;
    } else {
      const raw = await spool(input, false);
      path = (await isGzip(raw)) ? await spool(createReadStream(raw), true) : raw;
    }
    const tar = await TarFile.open(path);
    try {
      return await f(tar);
    } finally {
      await tar.close();
    }
  } finally {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }

  async function spool(from: Readable, gunzip: boolean): Promise<string> {
    dir ??= await mkdtemp(join(tmpDir ?? tmpdir(), 'estargz-build-'));
    const path = join(dir, `input-${gunzip ? 'tar' : 'raw'}`);
    try {
      if (gunzip) await pipeline(from, zlib.createGunzip(), createWriteStream(path));
      else await pipeline(from, createWriteStream(path));
    } catch (err) {
      throw new SgError('INVALID_ARGUMENT', `cannot read input: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err });
    }
    return path;
  }
}

async function isGzip(path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new SgError('NOT_FOUND', 'cannot open input tar', { path }, { cause: err });
  }
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(3), 0, 3, 0);
    return bytesRead === 3 && buffer[0] === 0x1f && buffer[1] === 0x8b && buffer[2] === 0x08;
  } finally {
    await fh.close();
  }
}
