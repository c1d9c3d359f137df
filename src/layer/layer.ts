/**
 * A mounted layer's file tree as the kernel sees it (spec §3.2–3.7): upstream's inode
 * scheme, attributes, whiteouts shown as char 0/0 devices, the opaque xattr, hidden
 * landmarks and markers, and the `.stargz-snapshotter/<digest>.json` state file.
 * Bytes come from the ChunkReader; nothing here knows FUSE or IPFS.
 */
import { constants } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { SgError, errorMessage } from '../errors.js';
import type { Estargz, LayerNode } from '../estargz/index.js';
import { NO_PREFETCH_LANDMARK, OPAQUE_MARKER, PREFETCH_LANDMARK, ROOT_ID, WHITEOUT_PREFIX } from '../estargz/index.js';
import type { Logger } from '../log/logger.js';
import type { Attr, DirEntry, LayerFs, StatFs } from './fs-api.js';
import type { ChunkReader } from './chunk-reader.js';
import type { WholeFiles } from './whole-files.js';

export const STATE_DIR = '.stargz-snapshotter';
const STATE_DIR_INO = 1;
const STATE_FILE_INO = 2;
/** TOC node id k is inode k + 3 (upstream: 1 and 2 are the state dir and file). */
const INO_BASE = 3;

const { S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO } = constants;
const TYPE_BITS: Record<LayerNode['type'], number> = { dir: S_IFDIR, reg: S_IFREG, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO };

const STATFS: StatFs = { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 };
const ZERO_TIME = new Date(0);
/** Directory entries kept listed, over all directories: a walk of the whole tree must not keep one per file. */
const LISTED_ENTRIES = 8192;

export interface LayerOptions {
  /** Layer (blob) digest, names the state file. */
  readonly digest: string;
  /** `trusted` normally, `user` when overlay runs with userxattr (spec §3.4). */
  readonly opaqueXattr: 'trusted' | 'user';
  readonly log: Logger;
  /** Compressed bytes of the blob this layer has available so far (for the state file). */
  readonly fetchedSize: () => number;
  /** Whole-file cache entries for FUSE passthrough; none: reads always come here. */
  readonly wholeFiles?: WholeFiles;
}

/** The state file's fields, in upstream's order. */
export interface LayerState {
  readonly error?: string;
  readonly digest: string;
  readonly size: number;
  readonly fetchedSize: number;
  readonly fetchedPercent: number;
}

/** What a path names: a TOC node, a synthesised whiteout, or the state dir/file. */
type Target =
  | { kind: 'node'; node: LayerNode }
  | { kind: 'whiteout'; marker: LayerNode }
  | { kind: 'state-dir' }
  | { kind: 'state-file' };

export class Layer implements LayerFs {
  /** Recent listings by directory id. */
  private readonly listings = new LRUCache<number, DirEntry[]>({ maxSize: LISTED_ENTRIES, sizeCalculation: (l) => Math.max(1, l.length) });
  private lastError: string | undefined;
  private readonly stateName: string;
  private readonly opaqueName: string;

  constructor(
    readonly estargz: Estargz,
    private readonly reader: ChunkReader,
    private readonly opts: LayerOptions,
  ) {
    this.stateName = `${opts.digest}.json`;
    this.opaqueName = `${opts.opaqueXattr}.overlay.opaque`;
  }

  /** Records an error for the state file (read by liveness probes) and the log. */
  report(op: string, path: string, err: unknown): void {
    this.lastError = `${op} ${path}: ${errorMessage(err)}`;
    this.opts.log.error('layer error', { op, path, layer: this.opts.digest, err });
  }

  getattr(path: string): Attr {
    return this.attrOf(this.resolve(path));
  }

  readdir(path: string): readonly DirEntry[] {
    const t = this.resolve(path);
    if (t.kind === 'state-dir') return [{ name: this.stateName, attr: this.attrOf({ kind: 'state-file' }) }];
    if (t.kind !== 'node' || t.node.type !== 'dir') throw new SgError('INVALID_ARGUMENT', 'not a directory', { path });
    let listing = this.listings.get(t.node.id);
    if (!listing) {
      listing = this.list(t.node);
      this.listings.set(t.node.id, listing);
    }
    return listing;
  }

  readlink(path: string): string {
    const t = this.resolve(path);
    if (t.kind !== 'node' || t.node.type !== 'symlink') throw new SgError('INVALID_ARGUMENT', 'not a symlink', { path });
    return t.node.linkName;
  }

  getxattr(path: string, name: string): Buffer | undefined {
    const t = this.resolve(path);
    if (t.kind !== 'node') return undefined;
    if (name === this.opaqueName && t.node.opaque) return Buffer.from('y');
    return t.node.xattrs.get(name);
  }

  listxattr(path: string): readonly string[] {
    const t = this.resolve(path);
    if (t.kind !== 'node') return [];
    const names = [...t.node.xattrs.keys()];
    return t.node.opaque ? [this.opaqueName, ...names] : names;
  }

  open(path: string): void {
    const t = this.resolve(path);
    if (t.kind === 'state-file') return;
    if (t.kind === 'node' && t.node.type === 'reg') return;
    throw new SgError('INVALID_ARGUMENT', 'not a regular file', { path });
  }

  async wholeFile(path: string): Promise<string | undefined> {
    const t = this.resolve(path);
    if (t.kind !== 'node' || !this.opts.wholeFiles) return undefined;
    return this.opts.wholeFiles.pathOf(t.node);
  }

  released(path: string): void {
    const t = this.resolve(path);
    if (t.kind === 'node') this.opts.wholeFiles?.assembleWhenCached(t.node);
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const t = this.resolve(path);
    if (t.kind === 'state-file') return this.stateJson().subarray(offset, offset + length);
    if (t.kind !== 'node' || t.node.type !== 'reg') throw new SgError('INVALID_ARGUMENT', 'not a regular file', { path });
    try {
      return await this.reader.read(t.node, offset, length);
    } catch (err) {
      this.report('read', path, err);
      throw err;
    }
  }

  statfs(): StatFs {
    return STATFS;
  }

  state(): LayerState {
    const size = this.estargz.blobSize;
    const fetchedSize = Math.min(size, this.opts.fetchedSize());
    return {
      ...(this.lastError ? { error: this.lastError } : {}),
      digest: this.opts.digest,
      size,
      fetchedSize,
      fetchedPercent: size === 0 ? 100 : (fetchedSize * 100) / size,
    };
  }

  /** The state file's content, regenerated on every access (spec §3.7). */
  stateJson(): Buffer {
    return Buffer.from(JSON.stringify(this.state()) + '\n');
  }

  private resolve(path: string): Target {
    let node = this.estargz.model.root;
    if (path === '/' || path === '') return { kind: 'node', node };
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const name = parts[i]!;
      if (node.type !== 'dir') throw notFound(path);
      const isRoot = node.id === ROOT_ID;
      if (isRoot && name === STATE_DIR) {
        if (i === parts.length - 1) return { kind: 'state-dir' };
        if (i === parts.length - 2 && parts[i + 1] === this.stateName) return { kind: 'state-file' };
        throw notFound(path);
      }
      if (name.startsWith(WHITEOUT_PREFIX) || (isRoot && (name === PREFETCH_LANDMARK || name === NO_PREFETCH_LANDMARK))) throw notFound(path);
      const child = node.child(name);
      if (child) {
        node = child;
        continue;
      }
      const marker = node.child(WHITEOUT_PREFIX + name);
      if (marker && i === parts.length - 1) return { kind: 'whiteout', marker };
      throw notFound(path);
    }
    return { kind: 'node', node };
  }

  private list(dir: LayerNode): DirEntry[] {
    const isRoot = dir.id === ROOT_ID;
    const out: DirEntry[] = [];
    for (const [name, child] of dir.children()) {
      if (name === OPAQUE_MARKER) continue;
      if (isRoot && (name === PREFETCH_LANDMARK || name === NO_PREFETCH_LANDMARK)) continue;
      if (name.startsWith(WHITEOUT_PREFIX)) {
        const hidden = name.slice(WHITEOUT_PREFIX.length);
        if (!dir.child(hidden)) out.push({ name: hidden, attr: this.attrOf({ kind: 'whiteout', marker: child }) });
        continue;
      }
      out.push({ name, attr: this.attrOf({ kind: 'node', node: child }) });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private attrOf(t: Target): Attr {
    switch (t.kind) {
      case 'state-dir':
        return { ino: STATE_DIR_INO, mode: S_IFDIR | 0o500, nlink: 1, uid: 0, gid: 0, size: 0, rdev: 0, blocks: 0, mtime: ZERO_TIME };
      case 'state-file': {
        const size = this.stateJson().length;
        return { ino: STATE_FILE_INO, mode: S_IFREG | 0o400, nlink: 1, uid: 0, gid: 0, size, rdev: 0, blocks: blocks(size), mtime: ZERO_TIME };
      }
      case 'whiteout':
        return { ino: t.marker.id + INO_BASE, mode: S_IFCHR, nlink: 1, uid: 0, gid: 0, size: 0, rdev: 0, blocks: 0, mtime: toDate(t.marker) };
      case 'node': {
        const n = t.node;
        const size = n.type === 'symlink' ? Buffer.byteLength(n.linkName) : n.type === 'reg' ? n.size : 0;
        return {
          ino: n.id + INO_BASE,
          mode: TYPE_BITS[n.type] | (n.mode & 0o7777),
          nlink: n.numLink || 1,
          uid: n.uid,
          gid: n.gid,
          size,
          rdev: n.type === 'char' || n.type === 'block' ? makedev(n.devMajor, n.devMinor) : 0,
          blocks: blocks(size),
          mtime: toDate(n),
        };
      }
    }
  }
}

function notFound(path: string): SgError {
  return new SgError('NOT_FOUND', 'no such file in layer', { path });
}

const blocks = (size: number): number => Math.ceil(size / 4096) * 8;
const toDate = (n: LayerNode): Date => new Date(n.mtime.sec * 1000 + Math.floor(n.mtime.nsec / 1e6));

/** Linux's dev_t encoding (glibc makedev), as the kernel expects in st_rdev. */
export function makedev(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}
