/**
 * The layer model's storage: one row per node id in typed-array columns, children as id
 * ranges into one array sorted by name, names and link targets in string tables, rare
 * fields (xattrs, device numbers, digests of chunked files, sizes of non-files) in sparse
 * columns. About 22 bytes a node plus its name, and 41 a chunk (chunk-table.ts), where a
 * node object with its entry, maps and strings took ~900.
 *
 * LayerNodes handed out are views: made on demand from the columns, cheap, and not kept.
 * Two views of one node are different objects; compare ids.
 */
import { SgError } from '../errors.js';
import type { ChunkTable } from './chunk-table.js';
import type { IndexColumn, Sparse } from './columns.js';
import type { StringTable } from './string-table.js';
import type { TarTime } from './tar.js';
import type { Chunk } from './toc.js';
import type { LayerModel, LayerNode, NodeRole, NodeType } from './model.js';
import { cleanName } from './names.js';

export const ROOT_ID = 1;
/** `aux` of a regular file without data. */
export const NO_CHUNKS = 0xffffffff;

export const NODE_TYPES: readonly NodeType[] = ['dir', 'reg', 'symlink', 'char', 'block', 'fifo'];
export const NODE_ROLES: readonly (NodeRole | undefined)[] = [undefined, 'whiteout', 'opaque-marker', 'prefetch-landmark', 'no-prefetch-landmark'];
/** `kind` = type index | role index << ROLE_SHIFT | DigestKind << DIGEST_SHIFT. */
export const ROLE_SHIFT = 3;
export const DIGEST_SHIFT = 6;
const TYPE_MASK = (1 << ROLE_SHIFT) - 1;
const ROLE_MASK = (1 << (DIGEST_SHIFT - ROLE_SHIFT)) - 1;
export const enum DigestKind {
  None = 0,
  /** The digest of the file's first chunk (a one-chunk file). */
  FirstChunk = 1,
  /** The digest of no bytes (an empty file). */
  Empty = 2,
  /** In `digests`. */
  Other = 3,
}
const DIGEST_BYTES = 32;
const DIGEST_PREFIX = 'sha256:';
export const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Mode, owner ids and owner names: few distinct combinations in a layer, so stored once each. */
export interface Attrs {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly userName: string;
  readonly groupName: string;
}

export interface NodeColumns {
  /** Node count; ids run 1..count, so every column has count + 1 rows (row 0 unused). */
  readonly count: number;
  readonly kind: Uint8Array;
  /** Index into `attrs`. */
  readonly attr: IndexColumn;
  /** Index into `times`. */
  readonly mtime: IndexColumn;
  /** Parent of the node's own name (hardlinks: the target's name); 0 for the root. */
  readonly parent: Uint32Array;
  /** numLink of the nodes other than directories where it is not 1 (hardlinked files). */
  readonly links: Sparse<number>;
  /** -1 for implicit directories. */
  readonly tocIndex: Int32Array;
  /** Directories: index into `dirStarts`; regular files: first chunk (or NO_CHUNKS); symlinks: index into `linkNames`. */
  readonly aux: Uint32Array;
  /** Base name of each node's own name, by id. */
  readonly names: StringTable;
  /** Directory k's children are edges [dirStarts[k], dirStarts[k + 1]), in name order. */
  readonly dirStarts: Uint32Array;
  /** numLink of directory k. */
  readonly dirLinks: IndexColumn;
  /** Directories k that hold `.wh..wh..opq`. */
  readonly opaqueDirs: Sparse<true>;
  /** Child id of each edge. */
  readonly edges: Uint32Array;
  /** Names of the edges that are not their child's own name (hardlinks), by edge. */
  readonly aliases: Sparse<string>;
  readonly linkNames: StringTable;
  readonly attrs: readonly Attrs[];
  readonly times: readonly TarTime[];
  readonly xattrs: Sparse<ReadonlyMap<string, Buffer>>;
  /** TOC sizes that are not 0, but for regular files: theirs is the sum of their chunks. */
  readonly sizes: Sparse<number>;
  /** [devMajor, devMinor] where either is not 0. */
  readonly devices: Sparse<readonly [number, number]>;
  /** File digests of DigestKind.Other: where in `digestBytes` (32 bytes each). */
  readonly digests: Sparse<number>;
  readonly digestBytes: Buffer;
  readonly chunks: ChunkTable;
  readonly prefetchEnd: number | undefined;
  readonly noPrefetch: boolean;
}

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();
const NO_CHUNK_LIST: readonly Chunk[] = [];

export class TableModel implements LayerModel {
  readonly root: LayerNode;
  readonly prefetchEnd: number | undefined;
  readonly noPrefetch: boolean;

  constructor(private readonly t: NodeColumns) {
    this.root = new NodeView(t, ROOT_ID);
    this.prefetchEnd = t.prefetchEnd;
    this.noPrefetch = t.noPrefetch;
  }

  get nodeCount(): number {
    return this.t.count;
  }

  get chunks(): ChunkTable {
    return this.t.chunks;
  }

  node(id: number): LayerNode {
    if (!Number.isInteger(id) || id < ROOT_ID || id > this.t.count) throw new SgError('INVALID_ARGUMENT', 'no such node id', { id, nodeCount: this.t.count });
    return new NodeView(this.t, id);
  }

  *nodes(): IterableIterator<LayerNode> {
    for (let id = ROOT_ID; id <= this.t.count; id++) yield new NodeView(this.t, id);
  }

  lookup(name: string): LayerNode | undefined {
    const clean = cleanName(name);
    if (clean === '') return this.root;
    let node: LayerNode | undefined = this.root;
    for (const part of clean.split('/')) {
      node = node.child(part);
      if (!node) return undefined;
    }
    return node;
  }
}

class NodeView implements LayerNode {
  private chunkList: readonly Chunk[] | undefined;

  constructor(
    private readonly t: NodeColumns,
    readonly id: number,
  ) {}

  get name(): string {
    const parts: string[] = [];
    for (let id = this.id; id !== ROOT_ID; id = this.t.parent[id]!) parts.push(this.t.names.get(id));
    return parts.reverse().join('/');
  }
  get type(): NodeType {
    return NODE_TYPES[this.t.kind[this.id]! & TYPE_MASK]!;
  }
  get role(): NodeRole | undefined {
    return NODE_ROLES[(this.t.kind[this.id]! >> ROLE_SHIFT) & ROLE_MASK];
  }
  get mode(): number {
    return this.attrs.mode;
  }
  get uid(): number {
    return this.attrs.uid;
  }
  get gid(): number {
    return this.attrs.gid;
  }
  get userName(): string {
    return this.attrs.userName;
  }
  get groupName(): string {
    return this.attrs.groupName;
  }
  get mtime(): TarTime {
    return this.t.times[this.t.mtime[this.id]!]!;
  }
  get size(): number {
    if (this.type !== 'reg') return this.t.sizes.get(this.id) ?? 0;
    const first = this.t.aux[this.id]!;
    return first === NO_CHUNKS ? 0 : this.t.chunks.fileSize(first);
  }
  get linkName(): string {
    return this.type === 'symlink' ? this.t.linkNames.get(this.t.aux[this.id]!) : '';
  }
  get devMajor(): number {
    return this.t.devices.get(this.id)?.[0] ?? 0;
  }
  get devMinor(): number {
    return this.t.devices.get(this.id)?.[1] ?? 0;
  }
  get xattrs(): ReadonlyMap<string, Buffer> {
    return this.t.xattrs.get(this.id) ?? NO_XATTRS;
  }
  get numLink(): number {
    return this.type === 'dir' ? this.t.dirLinks[this.t.aux[this.id]!]! : (this.t.links.get(this.id) ?? 1);
  }
  get digest(): string {
    switch ((this.t.kind[this.id]! >> DIGEST_SHIFT) as DigestKind) {
      case DigestKind.None:
        return '';
      case DigestKind.FirstChunk:
        return this.t.chunks.digest(this.t.aux[this.id]!);
      case DigestKind.Empty:
        return EMPTY_DIGEST;
      case DigestKind.Other: {
        const at = this.t.digests.get(this.id)! * DIGEST_BYTES;
        return DIGEST_PREFIX + this.t.digestBytes.toString('hex', at, at + DIGEST_BYTES);
      }
    }
  }
  get chunks(): readonly Chunk[] {
    if (this.chunkList) return this.chunkList;
    const first = this.t.aux[this.id]!;
    return (this.chunkList = this.type === 'reg' && first !== NO_CHUNKS ? this.t.chunks.fileChunks(first) : NO_CHUNK_LIST);
  }
  get implicit(): boolean {
    return this.t.tocIndex[this.id] === -1;
  }
  get opaque(): boolean {
    return this.type === 'dir' && this.t.opaqueDirs.has(this.t.aux[this.id]!);
  }
  get tocIndex(): number {
    return this.t.tocIndex[this.id]!;
  }

  child(base: string): LayerNode | undefined {
    if (this.type !== 'dir') return undefined;
    const k = this.t.aux[this.id]!;
    let lo = this.t.dirStarts[k]!;
    let hi = this.t.dirStarts[k + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const name = this.edgeName(mid);
      if (name === base) return new NodeView(this.t, this.t.edges[mid]!);
      if (name < base) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  *children(): IterableIterator<readonly [string, LayerNode]> {
    if (this.type !== 'dir') return;
    const k = this.t.aux[this.id]!;
    for (let e = this.t.dirStarts[k]!; e < this.t.dirStarts[k + 1]!; e++) yield [this.edgeName(e), new NodeView(this.t, this.t.edges[e]!)];
  }

  private get attrs(): Attrs {
    return this.t.attrs[this.t.attr[this.id]!]!;
  }

  private edgeName(e: number): string {
    return this.t.aliases.get(e) ?? this.t.names.get(this.t.edges[e]!);
  }
}
