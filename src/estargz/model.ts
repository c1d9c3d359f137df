/**
 * The layer's file tree built from checked TOC entries: what the layer fs serves.
 *
 * - Names are clean; parent directories missing from the TOC are synthesised (mode 0755,
 *   owner 0, zero mtime).
 * - All names of a hardlinked file share one node; `numLink` counts them. Directories
 *   count 2 + subdirectories, an explicit root one less (the Go reader's NumLink).
 * - Node ids run depth-first from 1 (root), children in name order, so a layer always
 *   gets the same ids (upstream walks a Go map, in random order).
 * - Whiteouts, opaque markers and root landmarks are recognised but kept as children:
 *   how to present them is the layer fs's business.
 *
 * Rejected as HOSTILE_TOC: duplicate names, a non-directory root or parent, hardlinks to
 * missing entries, to directories or in cycles.
 *
 * The model keeps no TOC entry: it is built into columns (draft.ts, node-table.ts) and
 * hands out nodes as views, so that a process can hold many 100k-entry layers.
 */
import { SgError } from '../errors.js';
import type { ChunkFlags, ChunkTable } from './chunk-table.js';
import { DraftTree, NO_ROLE } from './draft.js';
import { baseName, cleanName, climbsAboveRoot, NO_PREFETCH_LANDMARK, OPAQUE_MARKER, parentName, PREFETCH_LANDMARK, WHITEOUT_PREFIX } from './names.js';
import { NO_CHUNKS, NODE_ROLES, TableModel } from './node-table.js';
import type { TarTime } from './tar.js';
import type { Chunk, Toc, TocEntry } from './toc.js';

export type NodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

/** What a name means to overlayfs or to prefetch, beyond its file type. */
export type NodeRole = 'whiteout' | 'opaque-marker' | 'prefetch-landmark' | 'no-prefetch-landmark';

/** A node as seen at one moment: made on demand, not kept by the model (compare ids, not objects). */
export interface LayerNode {
  /** Depth-first from 1 (root). */
  readonly id: number;
  /** Clean name of the entry that defines the node (the target, for hardlinks); `""` = root. */
  readonly name: string;
  readonly type: NodeType;
  /** Tar header mode: permission bits plus setuid/setgid/sticky (mask with 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Owner names carried forward per uid/gid in TOC order (the TOC stores each only once). */
  readonly userName: string;
  readonly groupName: string;
  readonly mtime: TarTime;
  /** TOC `size`: file size for `reg`; the layer fs reports a symlink's target length itself. */
  readonly size: number;
  /** Symlink target, as stored. */
  readonly linkName: string;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  readonly numLink: number;
  /** File digest from the TOC (`reg` only, may be `""`). */
  readonly digest: string;
  /** `reg` data in file order; empty for empty files and non-files. */
  readonly chunks: readonly Chunk[];
  /** A directory synthesised because the TOC only named things below it. */
  readonly implicit: boolean;
  readonly role: NodeRole | undefined;
  /** Directory holding `.wh..wh..opq`. */
  readonly opaque: boolean;
  /** TOC index of the defining entry; -1 for implicit directories. */
  readonly tocIndex: number;
  /** Directories: the node under a base name (hardlinks appear under each of their names). */
  child(base: string): LayerNode | undefined;
  /** Directories: base names and nodes in name order; nothing for other types. */
  children(): IterableIterator<readonly [string, LayerNode]>;
}

export interface LayerModel {
  readonly root: LayerNode;
  /** Ids run 1..nodeCount. */
  readonly nodeCount: number;
  node(id: number): LayerNode;
  /** Every node once, by id. */
  nodes(): IterableIterator<LayerNode>;
  /** Any name form (`./a/`, `/a`, `a`); hardlinks resolve to their target's node. */
  lookup(name: string): LayerNode | undefined;
  /** Every chunk of the layer in TOC order, which is blob order. */
  readonly chunks: ChunkTable;
  /** Blob offset up to which to prefetch (payload of the root `.prefetch.landmark`), if any. */
  readonly prefetchEnd: number | undefined;
  /** The root holds `.no.prefetch.landmark`. */
  readonly noPrefetch: boolean;
}

const ROLE: Record<NodeRole, number> = {
  whiteout: NODE_ROLES.indexOf('whiteout'),
  'opaque-marker': NODE_ROLES.indexOf('opaque-marker'),
  'prefetch-landmark': NODE_ROLES.indexOf('prefetch-landmark'),
  'no-prefetch-landmark': NODE_ROLES.indexOf('no-prefetch-landmark'),
};

export function buildModel(toc: Toc): LayerModel {
  const builder = new ModelBuilder();
  for (const e of toc.entries) builder.add(e, toc.chunks);
  return builder.finish(toc.chunks);
}

/**
 * Takes checked entries one at a time in TOC order (straight from the decoder, so that
 * they need not all exist at once) and keeps only what their nodes need. A namespace
 * error is reported by finish(): only once the whole TOC has passed its own checks.
 */
export class ModelBuilder {
  private readonly tree = new DraftTree();
  // By clean name: drafts of non-hardlink entries (later also hardlink names → their
  // target's draft), and the hardlink entries themselves.
  private readonly nodes = new Map<string, number>();
  private readonly links = new Map<string, TocEntry>();
  /** Every entry in TOC order: its own draft, or the hardlink entry. */
  private readonly order: (number | TocEntry)[] = [];
  private readonly uname = new Map<number, string>();
  private readonly gname = new Map<number, string>();
  private failure: SgError | undefined;

  /** `chunks`: the chunks of `e` and the entries before it. */
  add(e: TocEntry, chunks: ChunkFlags): void {
    if (this.failure) return;
    if (this.nodes.has(e.name) || this.links.has(e.name)) {
      this.failure = hostile('duplicate entry name', e);
      return;
    }
    if (e.name === '' && e.type !== 'dir') {
      this.failure = hostile('root entry is not a directory', e);
      return;
    }
    if (e.userName) this.uname.set(e.uid, e.userName);
    if (e.groupName) this.gname.set(e.gid, e.groupName);
    if (e.type === 'hardlink') {
      this.links.set(e.name, e);
      this.order.push(e);
      return;
    }
    const d = this.tree.addEntry(e, this.uname.get(e.uid) ?? '', this.gname.get(e.gid) ?? '', chunks);
    this.nodes.set(e.name, d);
    this.order.push(d);
  }

  /** The model over the finished chunk table of the same entries. */
  finish(chunks: ChunkTable): LayerModel {
    if (this.failure) throw this.failure;
    const { tree } = this;
    const root = this.dirFor('');
    // Entries of one directory usually follow each other: remember the last parent.
    let lastParentName: string | undefined;
    let lastParent = root;
    for (const x of this.order) {
      const own = typeof x === 'number';
      const name = own ? tree.name(x) : x.name;
      if (name === '') continue;
      const pname = parentName(name);
      if (pname !== lastParentName) {
        lastParent = this.dirFor(pname);
        lastParentName = pname;
      }
      const node = own ? x : this.resolveHardlink(x);
      if (!own) this.nodes.set(name, node);
      tree.countLink(node);
      this.addChild(lastParent, baseName(name), node, !own);
    }

    const { ordered, byDir } = tree.assignIds(root);
    let prefetchEnd: number | undefined;
    let noPrefetch = false;
    for (const { base, child } of tree.children(root, byDir)) {
      if (tree.typeOf(child) !== 'reg') continue;
      if (base === PREFETCH_LANDMARK) {
        tree.setRole(child, ROLE['prefetch-landmark']);
        const first = tree.firstChunkOf(child);
        prefetchEnd = first !== NO_CHUNKS ? chunks.offset(first) : undefined;
      } else if (base === NO_PREFETCH_LANDMARK) {
        tree.setRole(child, ROLE['no-prefetch-landmark']);
        noPrefetch = true;
      }
    }
    return new TableModel(tree.columns(ordered, byDir, chunks, prefetchEnd, noPrefetch));
  }

  /** The directory draft for a clean name, creating it and its parents when the TOC has none. */
  private dirFor(name: string): number {
    const found = this.nodes.get(name);
    if (found !== undefined) {
      if (this.tree.typeOf(found) !== 'dir') throw hostile('parent is not a directory', { name, index: this.tree.tocIndexOf(found) });
      return found;
    }
    const link = this.links.get(name);
    if (link) throw hostile('parent is a hardlink', link);
    const dir = this.tree.addImplicitDir(name);
    this.nodes.set(name, dir);
    if (name !== '') this.addChild(this.dirFor(parentName(name)), baseName(name), dir, false);
    return dir;
  }

  private addChild(dir: number, base: string, child: number, alias: boolean): void {
    const { tree } = this;
    if (tree.typeOf(child) === 'dir') tree.countLink(dir); // the child's ".."
    tree.addEdge(dir, base, child, alias);
    if (base === OPAQUE_MARKER) {
      tree.setOpaque(dir);
      if (tree.roleOf(child) === NO_ROLE) tree.setRole(child, ROLE['opaque-marker']);
    } else if (base.startsWith(WHITEOUT_PREFIX) && tree.roleOf(child) === NO_ROLE) {
      tree.setRole(child, ROLE.whiteout);
    }
  }

  /** Follows a hardlink chain to a non-link entry's draft. */
  private resolveHardlink(e: TocEntry): number {
    const seen = new Set<string>([e.name]);
    let cur = e;
    for (;;) {
      if (climbsAboveRoot(cur.linkName)) throw hostile('hardlink target escapes the root', e, { linkName: cur.linkName });
      const target = cleanName(cur.linkName);
      const next = this.links.get(target);
      if (!next) {
        // A draft that is not an implicit directory: the target entry itself.
        const node = this.nodes.get(target);
        if (node === undefined || this.tree.isImplicit(node)) throw hostile('hardlink target does not exist', e, { linkName: cur.linkName });
        if (this.tree.typeOf(node) === 'dir') throw hostile('hardlink to a directory', e, { linkName: cur.linkName });
        return node;
      }
      if (seen.has(next.name)) throw hostile('hardlink cycle', e, { linkName: cur.linkName });
      seen.add(next.name);
      cur = next;
    }
  }
}

function hostile(message: string, e: Pick<TocEntry, 'name' | 'index'>, extra: Record<string, string> = {}): SgError {
  return new SgError('HOSTILE_TOC', message, { entry: e.name, index: e.index, ...extra });
}
