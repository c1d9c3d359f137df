/**
 * One FUSE connection served from the event loop: reads requests from the /dev/fuse fd
 * whenever it is readable (each read(2) returns exactly one request), answers INIT and
 * the connection-level ops itself and hands the rest to a handler; writes each reply
 * with one write(2), in whatever order the handler finishes them.
 */
import { closeSync, readSync, writeSync, writevSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { BackingFiles } from './backing.js';
import { watchReadable } from './fd-watch.js';
import { EIO, EPROTO } from './errno.js';
import {
  IN_HEADER_SIZE, InitFlag, InitFlag2, KERNEL_MAJOR, MIN_READ_BUFFER, OUT_HEADER_SIZE, Op,
  initOut, outHeader, parseHeader, parseInit, readU64, type RequestHeader,
} from './protocol.js';

export interface Request extends RequestHeader {
  /** The bytes after the header; valid only until the handler returns. */
  readonly body: Buffer;
}

export interface Handler {
  /** Answers `req` now or later through `Session.reply`/`Session.fail`. */
  handle(req: Request): void;
  /** FORGET and BATCH_FORGET: the kernel dropped `count` lookups of `nodeid` (no reply). */
  forget(nodeid: number, count: number): void;
}

export interface SessionOptions {
  /** Largest read the kernel may send, in 4 KiB pages (FUSE_MAX_PAGES). */
  readonly maxPages: number;
  /** Background requests (readahead) the kernel keeps in flight. */
  readonly maxBackground: number;
  /** Ask for FUSE passthrough (kernel >= 6.9), so that opens may name backing files. */
  readonly passthrough?: boolean;
  readonly log: Logger;
}

/**
 * The kernel's smallest max_write: writes never reach a read-only mount, so requests stay
 * small (names of at most 1 KiB) and a 12 KiB read buffer per mount is enough.
 */
const MAX_WRITE = 4096;
/** Requests handled per wakeup, so that one busy mount leaves the event loop to others. */
const BATCH = 64;
const WANTED_FLAGS = InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS;

export class Session {
  private readonly buf = Buffer.allocUnsafe(MIN_READ_BUFFER + MAX_WRITE);
  private stopWatch: (() => void) | undefined;
  private closed = false;
  private handler: Handler | undefined;
  /** Resolves once INIT is answered; rejects if the connection ends before. */
  readonly initialized: Promise<void>;
  private initDone!: (err?: Error) => void;
  /** Set at INIT when the kernel agreed to passthrough. */
  private backingFiles: BackingFiles | undefined;

  constructor(
    private readonly fd: number,
    private readonly opts: SessionOptions,
  ) {
    this.initialized = new Promise<void>((resolve, reject) => (this.initDone = (err) => (err ? reject(err) : resolve())));
    this.initialized.catch(() => {});
  }

  /** Starts reading requests; `handler` gets every one but INIT, INTERRUPT and DESTROY. */
  start(handler: Handler): void {
    this.handler = handler;
    this.stopWatch = watchReadable(this.fd, (status) => this.onReadable(status));
  }

  /** Replies with `payload` (none: an empty success). Dropped once closed. */
  reply(unique: number, payload?: Buffer): void {
    if (this.closed) return;
    const header = outHeader(OUT_HEADER_SIZE + (payload?.length ?? 0), 0, unique);
    try {
      if (payload) writevSync(this.fd, [header, payload]);
      else writeSync(this.fd, header);
    } catch (err) {
      this.writeFailed(err, unique);
    }
  }

  /** Replies with a negative errno. */
  fail(unique: number, errno: number): void {
    if (this.closed) return;
    try {
      writeSync(this.fd, outHeader(OUT_HEADER_SIZE, errno, unique));
    } catch (err) {
      this.writeFailed(err, unique);
    }
  }

  /** Stops serving and closes the device; the kernel fails every later op (ENOTCONN). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopWatch?.();
    closeSync(this.fd);
    this.initDone(new Error('FUSE connection closed before INIT'));
  }

  private onReadable(status: number): void {
    // An error (POLLERR) is how the end of the connection shows: the read says why.
    this.readRequests();
    if (status < 0 && !this.closed) {
      this.opts.log.error('polling /dev/fuse failed', { status });
      this.close();
    }
  }

  private readRequests(): void {
    for (let n = 0; n < BATCH && !this.closed; n++) {
      let len: number;
      try {
        len = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return;
        // ENOENT: the request was interrupted before we read it; EINTR: a signal.
        if (code === 'ENOENT' || code === 'EINTR') continue;
        // ENODEV: unmounted or aborted, the normal end.
        if (code !== 'ENODEV') this.opts.log.error('reading /dev/fuse failed', { err });
        this.close();
        return;
      }
      this.dispatch(len);
    }
  }

  private dispatch(len: number): void {
    if (len < IN_HEADER_SIZE) {
      this.opts.log.error('short FUSE request', { len });
      return;
    }
    const h = parseHeader(this.buf);
    const req: Request = { ...h, body: this.buf.subarray(IN_HEADER_SIZE, len) };
    switch (h.opcode) {
      case Op.INIT:
        return this.init(req);
      case Op.FORGET:
        return this.handler!.forget(h.nodeid, readU64(req.body, 0));
      case Op.BATCH_FORGET: {
        const count = req.body.readUInt32LE(0);
        for (let i = 0, off = 8; i < count && off + 16 <= req.body.length; i++, off += 16) {
          this.handler!.forget(readU64(req.body, off), readU64(req.body, off + 8));
        }
        return;
      }
      // No reply: reads cannot be cancelled half way, and they are bounded by the
      // source's timeouts; the interrupted request is answered when it completes.
      case Op.INTERRUPT:
        return;
      case Op.DESTROY:
        this.reply(h.unique);
        return;
      default:
        try {
          this.handler!.handle(req);
        } catch (err) {
          this.opts.log.error('FUSE handler threw', { op: h.opcode, err });
          this.fail(h.unique, EIO);
        }
    }
  }

  /** Backing files for passthrough opens, once INIT agreed to them; else undefined. */
  get passthrough(): BackingFiles | undefined {
    return this.backingFiles;
  }

  private init(req: Request): void {
    const k = parseInit(req.body);
    if (k.major !== KERNEL_MAJOR) {
      this.fail(req.unique, EPROTO);
      this.initDone(new Error(`unsupported FUSE protocol ${k.major}.${k.minor}`));
      return;
    }
    const maxBackground = this.opts.maxBackground;
    const passthrough = this.opts.passthrough === true && (k.flags2 & InitFlag2.PASSTHROUGH) !== 0;
    const flags = (k.flags & WANTED_FLAGS) | (passthrough ? InitFlag.INIT_EXT : 0);
    this.reply(
      req.unique,
      initOut({
        maxReadahead: k.maxReadahead,
        flags,
        maxBackground,
        congestionThreshold: Math.ceil((maxBackground * 3) / 4),
        maxWrite: MAX_WRITE,
        maxPages: this.opts.maxPages,
        flags2: passthrough ? InitFlag2.PASSTHROUGH : 0,
        // Backing files on a plain filesystem only: the mount then sits one level deep,
        // and overlayfs stacked on it (containerd's rootfs) stays within the kernel's two.
        maxStackDepth: passthrough ? 1 : 0,
      }),
    );
    if (passthrough) this.backingFiles = new BackingFiles(this.fd);
    this.opts.log.debug('FUSE connection initialised', { protocol: `${k.major}.${k.minor}`, flags: flags.toString(16), passthrough });
    this.initDone();
  }

  private writeFailed(err: unknown, unique: number): void {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT: the kernel no longer waits for this request (interrupted or aborted).
    if (code === 'ENOENT') return;
    if (code === 'ENODEV') {
      this.close();
      return;
    }
    this.opts.log.error('FUSE reply failed', { unique, err });
  }
}
