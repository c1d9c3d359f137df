/**
 * The layer's tree while it is being put together: one row per node (a draft, numbered in
 * the order made) and one per name (an edge), in growable typed arrays, so that building
 * the model of a 100k-entry layer makes little garbage. A draft keeps only what its node
 * needs from its entry (interned owner and mtime, first chunk, link target): no TOC entry
 * outlives its decoding. Once ids are known, the rows become the model's columns.
 */
import type { ChunkFlags, ChunkTable } from './chunk-table.js';
import { grow, narrow, Sparse } from './columns.js';
import { parseModtime } from './modtime.js';
import { baseName } from './names.js';
import { DIGEST_SHIFT, DigestKind, EMPTY_DIGEST, NO_CHUNKS, NODE_TYPES, ROLE_SHIFT, type Attrs, type NodeColumns } from './node-table.js';
import { StringTableBuilder } from './string-table.js';
import type { TarTime } from './tar.js';
import type { TocEntry } from './toc.js';
import type { NodeType } from './model.js';

export const NO_ROLE = 0;
/** Rows to start with; the arrays double as they fill. */
const ROWS = 1024;
const DIR = NODE_TYPES.indexOf('dir');
const REG = NODE_TYPES.indexOf('reg');
const SYMLINK = NODE_TYPES.indexOf('symlink');
const TYPE_INDEX: Readonly<Record<string, number>> = Object.fromEntries(NODE_TYPES.map((t, i) => [t, i]));
const DIGEST_BYTES = 32;
const DIGEST_PREFIX = 'sha256:';

export class DraftTree {
  private n = 0;
  /** Clean name of each draft's defining entry. */
  private readonly names: string[] = [];
  private type = new Uint8Array(ROWS);
  /** -1 for implicit directories. */
  private tocIndex = new Int32Array(ROWS);
  private attr = new Uint32Array(ROWS);
  private mtime = new Uint32Array(ROWS);
  private digest = new Uint8Array(ROWS);
  private firstChunk = new Uint32Array(ROWS);
  private numLink = new Uint32Array(ROWS);
  private role = new Uint8Array(ROWS);
  private opaque = new Uint8Array(ROWS);
  /** 1: the draft has one of the rare fields below. */
  private rare = new Uint8Array(ROWS);
  /** Slot in `digestBytes` plus 1 (0: none). */
  private digestSlot = new Uint32Array(ROWS);
  /** Draft of the directory holding the draft's own name, plus 1 (0: none yet). */
  private parent = new Uint32Array(ROWS);
  /** Final id, 0 until assigned. */
  private id = new Uint32Array(ROWS);

  private edges = 0;
  private edgeDir = new Uint32Array(ROWS);
  private edgeChild = new Uint32Array(ROWS);
  private readonly edgeBase: string[] = [];
  /** Edges that are a hardlink's name, not their child's own. */
  private readonly aliases = new Set<number>();

  private readonly attrs = new AttrsTable();
  private readonly times = new Interner<TarTime>();
  // Fields few drafts have, by draft.
  private readonly linkNames = new Map<number, string>();
  private readonly sizes = new Map<number, number>();
  private readonly xattrs = new Map<number, ReadonlyMap<string, Buffer>>();
  private readonly devices = new Map<number, readonly [number, number]>();
  /** Digests of DigestKind.Other, raw, in the order they came. */
  private digestBytes = Buffer.alloc(ROWS * DIGEST_BYTES);
  private digestCount = 0;

  /** The draft of a non-hardlink entry; `userName`/`groupName` as carried forward to it. */
  addEntry(e: TocEntry, userName: string, groupName: string, chunks: ChunkFlags): number {
    const digest = digestKind(e, chunks);
    const d = this.add(e.name, TYPE_INDEX[e.type]!, e.index, this.attrs.index(e.mode, e.uid, e.gid, userName, groupName), this.times.index(e.modtime, parseModtime));
    this.digest[d] = digest;
    this.firstChunk[d] = e.numChunks > 0 ? e.firstChunk : NO_CHUNKS;
    if (e.type === 'symlink') this.linkNames.set(d, e.linkName);
    if (e.type !== 'reg' && e.size !== 0) this.setRare(this.sizes, d, e.size);
    if (e.xattrs.size > 0) this.setRare(this.xattrs, d, e.xattrs);
    if (e.devMajor !== 0 || e.devMinor !== 0) this.setRare(this.devices, d, [e.devMajor, e.devMinor]);
    if (digest === DigestKind.Other) this.digestSlot[d] = this.addDigest(e.digest) + 1;
    return d;
  }

  /** A directory the TOC only names things below: mode 0755, owner 0, zero mtime. */
  addImplicitDir(name: string): number {
    const d = this.add(name, DIR, -1, this.attrs.index(0o755, 0, 0, '', ''), this.times.index('', parseModtime));
    // Its own "." and its name in its parent, which no TOC entry will add.
    this.numLink[d] = 2;
    return d;
  }

  /** Links `child` into `dir` under `base`; `alias`: the name is a hardlink's. */
  addEdge(dir: number, base: string, child: number, alias: boolean): void {
    const e = this.edges++;
    if (e === this.edgeDir.length) {
      this.edgeDir = grow(this.edgeDir, e * 2);
      this.edgeChild = grow(this.edgeChild, e * 2);
    }
    this.edgeDir[e] = dir;
    this.edgeChild[e] = child;
    this.edgeBase.push(base);
    if (alias) this.aliases.add(e);
    else this.parent[child] = dir + 1;
  }

  name(d: number): string {
    return this.names[d]!;
  }
  typeOf(d: number): NodeType {
    return NODE_TYPES[this.type[d]!]!;
  }
  isImplicit(d: number): boolean {
    return this.tocIndex[d]! < 0;
  }
  tocIndexOf(d: number): number {
    return this.tocIndex[d]!;
  }
  firstChunkOf(d: number): number {
    return this.firstChunk[d]!;
  }
  roleOf(d: number): number {
    return this.role[d]!;
  }
  setRole(d: number, role: number): void {
    this.role[d] = role;
  }
  setOpaque(d: number): void {
    this.opaque[d] = 1;
  }
  /** One more name (or subdirectory ".."), for numLink. */
  countLink(d: number): void {
    this.numLink[d]!++;
  }

  /** Base names and drafts of a directory's children, in name order. */
  children(dir: number, byDir: EdgesByDir): { base: string; child: number }[] {
    return Array.from(byDir.edges.subarray(byDir.starts[dir], byDir.starts[dir + 1]), (e) => ({ base: this.edgeBase[e]!, child: this.edgeChild[e]! }));
  }

  /**
   * Depth-first ids from 1, children in name order; a hardlinked node keeps its first id.
   * Returns the drafts in id order and every directory's edges in name order.
   */
  assignIds(root: number): { ordered: Uint32Array; byDir: EdgesByDir } {
    const byDir = this.edgesByDir();
    const ordered = new Uint32Array(this.n);
    let next = 0;
    const stack: number[] = [root];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (this.id[d] !== 0) continue;
      this.id[d] = ++next;
      ordered[next - 1] = d;
      for (let i = byDir.starts[d + 1]! - 1; i >= byDir.starts[d]!; i--) {
        const child = this.edgeChild[byDir.edges[i]!]!;
        if (this.id[child] === 0) stack.push(child);
      }
    }
    return { ordered: ordered.subarray(0, next), byDir };
  }

  /** The drafts, in id order, as columns. */
  columns(ordered: Uint32Array, byDir: EdgesByDir, chunks: ChunkTable, prefetchEnd: number | undefined, noPrefetch: boolean): NodeColumns {
    const rows = ordered.length + 1;
    const kind = new Uint8Array(rows);
    const attr = new Uint32Array(rows);
    const mtime = new Uint32Array(rows);
    const parent = new Uint32Array(rows);
    const links = new Map<number, number>();
    const tocIndex = new Int32Array(rows);
    const aux = new Uint32Array(rows);
    const names = new StringTableBuilder();
    const linkNames = new StringTableBuilder();
    const dirs = ordered.filter((d) => this.type[d] === DIR);
    const dirStarts = new Uint32Array(dirs.length + 1);
    const dirLinks = new Uint32Array(dirs.length);
    const opaqueDirs = new Map<number, true>();
    const edges = new Uint32Array(this.edges);
    const aliases = new Map<number, string>();
    // The rare fields by id, filled in id order.
    const sizes = new Map<number, number>();
    const xattrs = new Map<number, ReadonlyMap<string, Buffer>>();
    const devices = new Map<number, readonly [number, number]>();
    const digests = new Map<number, number>();

    names.add(''); // row 0
    for (const d of ordered) {
      const id = this.id[d]!;
      const type = this.type[d]!;
      kind[id] = type | (this.role[d]! << ROLE_SHIFT) | (this.digest[d]! << DIGEST_SHIFT);
      if (type !== DIR && this.numLink[d] !== 1) links.set(id, this.numLink[d]!);
      parent[id] = this.parent[d] === 0 ? 0 : this.id[this.parent[d]! - 1]!;
      names.add(baseName(this.names[d]!));
      tocIndex[id] = this.tocIndex[d]!;
      attr[id] = this.attr[d]!;
      mtime[id] = this.mtime[d]!;
      if (type === REG) aux[id] = this.firstChunk[d]!;
      else if (type === SYMLINK) aux[id] = linkNames.add(this.linkNames.get(d)!);
      if (this.digestSlot[d]) digests.set(id, this.digestSlot[d]! - 1);
      if (!this.rare[d]) continue;
      copyRare(this.sizes, d, sizes, id);
      copyRare(this.xattrs, d, xattrs, id);
      copyRare(this.devices, d, devices, id);
    }
    let edge = 0;
    dirs.forEach((d, k) => {
      aux[this.id[d]!] = k;
      dirLinks[k] = this.numLink[d]!;
      if (this.opaque[d]) opaqueDirs.set(k, true);
      dirStarts[k] = edge;
      for (let i = byDir.starts[d]!; i < byDir.starts[d + 1]!; i++) {
        const e = byDir.edges[i]!;
        if (this.aliases.has(e)) aliases.set(edge, this.edgeBase[e]!);
        edges[edge++] = this.id[this.edgeChild[e]!]!;
      }
    });
    dirStarts[dirs.length] = edge;

    return {
      count: ordered.length,
      kind,
      attr: narrow(attr),
      mtime: narrow(mtime),
      parent,
      links: Sparse.of(links),
      tocIndex,
      aux,
      names: names.finish(),
      dirStarts,
      dirLinks: narrow(dirLinks),
      opaqueDirs: Sparse.of(opaqueDirs),
      edges,
      aliases: Sparse.of(aliases),
      linkNames: linkNames.finish(),
      attrs: this.attrs.values,
      times: this.times.values,
      sizes: Sparse.of(sizes),
      xattrs: Sparse.of(xattrs),
      devices: Sparse.of(devices),
      digests: Sparse.of(digests),
      digestBytes: Buffer.from(this.digestBytes.subarray(0, this.digestCount * DIGEST_BYTES)),
      chunks,
      prefetchEnd,
      noPrefetch,
    };
  }

  private add(name: string, type: number, tocIndex: number, attr: number, mtime: number): number {
    const d = this.n++;
    if (d === this.type.length) this.enlarge(d * 2);
    this.names.push(name);
    this.type[d] = type;
    this.tocIndex[d] = tocIndex;
    this.attr[d] = attr;
    this.mtime[d] = mtime;
    this.firstChunk[d] = NO_CHUNKS;
    // An explicit directory starts with its own "." (its name adds one more).
    this.numLink[d] = type === DIR ? 1 : 0;
    return d;
  }

  private enlarge(length: number): void {
    this.type = grow(this.type, length);
    this.tocIndex = grow(this.tocIndex, length);
    this.attr = grow(this.attr, length);
    this.mtime = grow(this.mtime, length);
    this.digest = grow(this.digest, length);
    this.firstChunk = grow(this.firstChunk, length);
    this.numLink = grow(this.numLink, length);
    this.role = grow(this.role, length);
    this.opaque = grow(this.opaque, length);
    this.parent = grow(this.parent, length);
    this.id = grow(this.id, length);
    this.rare = grow(this.rare, length);
    this.digestSlot = grow(this.digestSlot, length);
  }

  private setRare<T>(field: Map<number, T>, d: number, value: T): void {
    field.set(d, value);
    this.rare[d] = 1;
  }

  /** Stores a digest raw; returns its slot. */
  private addDigest(digest: string): number {
    const slot = this.digestCount++;
    if ((slot + 1) * DIGEST_BYTES > this.digestBytes.length) {
      const bigger = Buffer.alloc(this.digestBytes.length * 2);
      this.digestBytes.copy(bigger);
      this.digestBytes = bigger;
    }
    this.digestBytes.write(digest.slice(DIGEST_PREFIX.length), slot * DIGEST_BYTES, DIGEST_BYTES, 'hex');
    return slot;
  }

  /** Every directory's edges, grouped (counting sort by directory) and sorted by name. */
  private edgesByDir(): EdgesByDir {
    const starts = new Uint32Array(this.n + 1);
    for (let e = 0; e < this.edges; e++) starts[this.edgeDir[e]! + 1]!++;
    for (let d = 0; d < this.n; d++) starts[d + 1]! += starts[d]!;
    const fill = starts.slice(0, this.n);
    const edges = new Uint32Array(this.edges);
    for (let e = 0; e < this.edges; e++) edges[fill[this.edgeDir[e]!]!++] = e;
    const byName = (a: number, b: number) => {
      const x = this.edgeBase[a]!;
      const y = this.edgeBase[b]!;
      return x < y ? -1 : x > y ? 1 : 0;
    };
    for (let d = 0; d < this.n; d++) if (starts[d + 1]! - starts[d]! > 1) edges.subarray(starts[d], starts[d + 1]).sort(byName);
    return { starts, edges };
  }
}

/** Moves a draft's value in `from` (if it has one) to its id in `to`. */
function copyRare<T>(from: ReadonlyMap<number, T>, d: number, to: Map<number, T>, id: number): void {
  const value = from.get(d);
  if (value !== undefined) to.set(id, value);
}

/** Draft d's edges are edges[starts[d]..starts[d + 1]), in name order. */
export interface EdgesByDir {
  readonly starts: Uint32Array;
  readonly edges: Uint32Array;
}

function digestKind(e: TocEntry, chunks: ChunkFlags): DigestKind {
  if (e.digest === '') return DigestKind.None;
  if (e.numChunks > 0 && chunks.isFileDigest(e.firstChunk)) return DigestKind.FirstChunk;
  return e.digest === EMPTY_DIGEST ? DigestKind.Empty : DigestKind.Other;
}

/** Distinct values by key, each stored once. Neighbours in a TOC tend to share values: the last one is checked first. */
class Interner<T> {
  readonly values: T[] = [];
  private readonly byKey = new Map<string, number>();
  private lastKey: string | undefined;
  private last = 0;

  index(key: string, make: (key: string) => T): number {
    if (key === this.lastKey) return this.last;
    let i = this.byKey.get(key);
    if (i === undefined) {
      i = this.values.push(make(key)) - 1;
      this.byKey.set(key, i);
    }
    this.lastKey = key;
    return (this.last = i);
  }
}

/** Interned Attrs, without making a key string for the common run of equal neighbours. */
class AttrsTable {
  private readonly interner = new Interner<Attrs>();
  private last: Attrs | undefined;
  private lastIndex = 0;

  get values(): readonly Attrs[] {
    return this.interner.values;
  }

  index(mode: number, uid: number, gid: number, userName: string, groupName: string): number {
    const l = this.last;
    if (l && l.mode === mode && l.uid === uid && l.gid === gid && l.userName === userName && l.groupName === groupName) return this.lastIndex;
    const attrs = (this.last = { mode, uid, gid, userName, groupName });
    return (this.lastIndex = this.interner.index(`${mode} ${uid} ${gid} ${userName.length} ${userName}${groupName}`, () => attrs));
  }
}
