/**
 * FUSE requests → LayerFs calls → replies: the only translator between the two. Node ids
 * become paths (NodeTable), errors become errno (errno.ts), attributes and listings become
 * kernel structs (protocol.ts). Reads are asynchronous and many may be in flight; every
 * other op answers at once. Mutations get EROFS, unknown ops ENOSYS.
 */
import { constants } from 'node:fs';
import type { Attr, LayerFs } from '../layer/fs-api.js';
import type { Logger } from '../log/logger.js';
import { isSgError } from '../errors.js';
import { EBADF, ENODATA, ENOENT, ENOSYS, ERANGE, EROFS, toErrno } from './errno.js';
import { NodeTable } from './node-table.js';
import { PassthroughOpens } from './passthrough-opens.js';
import {
  FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH, FOPEN_PASSTHROUGH, OP_NAMES, Op, WRITE_OPS,
  attrOut, cString, dirents, entryOut, openOut, parseRead, readU64, statfsOut, xattrSizeOut,
  type DirEntryOut, type Validity,
} from './protocol.js';
import type { Handler, Request, Session } from './session.js';

export interface BridgeOptions extends Validity {
  readonly log: Logger;
  /** Logs every op at debug (decided once, not per op). */
  readonly trace: boolean;
}

/** Layer files never change: keep their pages across opens, and skip FLUSH on close. */
const FILE_OPEN_FLAGS = FOPEN_KEEP_CACHE | FOPEN_NOFLUSH;
/** The kernel refuses KEEP_CACHE with passthrough (the backing file's pages are used). */
const PASSTHROUGH_OPEN_FLAGS = FOPEN_PASSTHROUGH | FOPEN_NOFLUSH;
const DIR_OPEN_FLAGS = FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
/** Linux's O_ACCMODE (not in fs.constants). */
const O_ACCMODE = 3;

export class Bridge implements Handler {
  private readonly nodes: NodeTable;
  /** Open directories: a listing taken at OPENDIR, so READDIR offsets stay stable. */
  private readonly dirs = new Map<number, DirEntryOut[]>();
  private nextDirHandle = 1;
  /** Set once INIT agreed to passthrough (the session knows only after the mount). */
  private passthrough: PassthroughOpens | undefined;

  constructor(
    private readonly fs: LayerFs,
    private readonly session: Session,
    private readonly opts: BridgeOptions,
  ) {
    this.nodes = new NodeTable(fs.getattr('/').ino);
  }

  forget(nodeid: number, count: number): void {
    if (this.opts.trace) this.opts.log.debug('fuse op', { op: 'forget', nodeid, count });
    this.nodes.forget(nodeid, count);
  }

  handle(req: Request): void {
    const path = this.nodes.pathOf(req.nodeid);
    const op = OP_NAMES.get(req.opcode) ?? `op${req.opcode}`;
    if (path === undefined) {
      this.opts.log.warn('fuse op on an unknown node', { op, nodeid: req.nodeid });
      this.session.fail(req.unique, ENOENT);
      return;
    }
    try {
      this.dispatch(op, path, req);
    } catch (err) {
      this.failed(op, path, req.unique, err);
    }
  }

  private dispatch(op: string, path: string, req: Request): void {
    const { session, fs, opts } = this;
    const { unique, body } = req;
    switch (req.opcode) {
      case Op.LOOKUP:
        return this.lookup(path, cString(body), unique);
      case Op.GETATTR:
        this.trace(op, path);
        return session.reply(unique, attrOut(fs.getattr(path), opts));
      case Op.READLINK:
        this.trace(op, path);
        return session.reply(unique, Buffer.from(fs.readlink(path)));
      case Op.OPEN: {
        this.trace(op, path);
        if ((body.readUInt32LE(0) & O_ACCMODE) !== constants.O_RDONLY) return session.fail(unique, EROFS);
        fs.open(path);
        return this.open(path, req);
      }
      case Op.READ:
        return this.read(path, req);
      case Op.RELEASE:
        this.trace(op, path);
        if (this.passthroughOpens()?.release(req.nodeid)) fs.released(path);
        return session.reply(unique);
      case Op.FLUSH:
      case Op.ACCESS:
        // access(2) for writing is refused by the read-only mount before it gets here.
        this.trace(op, path);
        return session.reply(unique);
      case Op.OPENDIR:
        this.trace(op, path);
        return this.opendir(path, unique);
      case Op.READDIR: {
        const { fh, offset, size } = parseRead(body);
        this.trace(op, path, { offset });
        const entries = this.dirs.get(fh);
        if (!entries) return session.fail(unique, EBADF);
        return session.reply(unique, dirents(entries, offset, size));
      }
      case Op.RELEASEDIR:
        this.trace(op, path);
        this.dirs.delete(readU64(body, 0)); // fuse_release_in.fh
        return session.reply(unique);
      case Op.STATFS:
        this.trace(op, path);
        return session.reply(unique, statfsOut(fs.statfs()));
      case Op.GETXATTR: {
        const name = cString(body, 8);
        this.trace(op, path, { name });
        const value = fs.getxattr(path, name);
        if (value === undefined) return session.fail(unique, ENODATA);
        return this.replySized(unique, body.readUInt32LE(0), value);
      }
      case Op.LISTXATTR: {
        this.trace(op, path);
        const names = fs.listxattr(path);
        return this.replySized(unique, body.readUInt32LE(0), Buffer.from(names.map((n) => `${n}\0`).join('')));
      }
      default:
        this.trace(op, path);
        return session.fail(unique, WRITE_OPS.has(req.opcode) ? EROFS : ENOSYS);
    }
  }

  private lookup(parent: string, name: string, unique: number): void {
    const path = parent === '/' ? `/${name}` : `${parent}/${name}`;
    this.trace('lookup', path);
    let attr: Attr;
    try {
      attr = this.fs.getattr(path);
    } catch (err) {
      // A layer never changes: the kernel may remember that the name is absent.
      if (isSgError(err, 'NOT_FOUND')) return this.session.reply(unique, entryOut(0, undefined, this.opts));
      throw err;
    }
    const nodeid = this.nodes.idOf(attr.ino);
    this.nodes.lookedUp(nodeid, path);
    this.session.reply(unique, entryOut(nodeid, attr, this.opts));
  }

  private open(path: string, req: Request): void {
    const { unique } = req;
    const passthrough = this.passthroughOpens();
    if (!passthrough) return this.session.reply(unique, openOut(0, FILE_OPEN_FLAGS));
    passthrough.acquire(req.nodeid, path).then(
      (id) => {
        if (id !== undefined) this.trace('passthrough', path, { backingId: id });
        this.session.reply(unique, id === undefined ? openOut(0, FILE_OPEN_FLAGS) : openOut(0, PASSTHROUGH_OPEN_FLAGS, id));
      },
      (err: unknown) => this.failed('open', path, unique, err),
    );
  }

  private passthroughOpens(): PassthroughOpens | undefined {
    const backing = this.session.passthrough;
    if (backing && !this.passthrough) this.passthrough = new PassthroughOpens(backing, (p) => this.fs.wholeFile(p), this.opts.log);
    return this.passthrough;
  }

  private read(path: string, req: Request): void {
    const { offset, size } = parseRead(req.body);
    this.trace('read', path, { offset, length: size });
    const { unique } = req;
    this.fs.read(path, offset, size).then(
      (data) => this.session.reply(unique, data.length > size ? data.subarray(0, size) : data),
      (err: unknown) => this.failed('read', path, unique, err),
    );
  }

  private opendir(path: string, unique: number): void {
    const self = this.fs.getattr(path);
    const parent = path === '/' ? self : this.fs.getattr(path.slice(0, Math.max(1, path.lastIndexOf('/'))));
    const entries: DirEntryOut[] = [
      { name: '.', ino: self.ino, mode: self.mode },
      { name: '..', ino: parent.ino, mode: parent.mode },
    ];
    for (const e of this.fs.readdir(path)) entries.push({ name: e.name, ino: e.attr.ino, mode: e.attr.mode });
    const fh = this.nextDirHandle++;
    this.dirs.set(fh, entries);
    this.session.reply(unique, openOut(fh, DIR_OPEN_FLAGS));
  }

  /** GETXATTR/LISTXATTR: size 0 asks for the size; a smaller buffer than needed is ERANGE. */
  private replySized(unique: number, size: number, value: Buffer): void {
    if (size === 0) this.session.reply(unique, xattrSizeOut(value.length));
    else if (size < value.length) this.session.fail(unique, ERANGE);
    else this.session.reply(unique, value);
  }

  private failed(op: string, path: string, unique: number, err: unknown): void {
    const errno = toErrno(err);
    if (errno !== ENOENT && errno !== ENODATA) this.opts.log.warn('fuse op failed', { op, path, errno, err });
    this.session.fail(unique, errno);
  }

  private trace(op: string, path: string, extra?: Record<string, unknown>): void {
    if (this.opts.trace) this.opts.log.debug('fuse op', { op, path, ...extra });
  }
}
