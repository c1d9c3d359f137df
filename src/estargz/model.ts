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
 */
import { SgError } from '../errors.js';
import { baseName, cleanName, climbsAboveRoot, NO_PREFETCH_LANDMARK, OPAQUE_MARKER, parentName, PREFETCH_LANDMARK, WHITEOUT_PREFIX } from './names.js';
import { parseModtime } from './modtime.js';
import type { TarTime } from './tar.js';
import type { Chunk, Toc, TocEntry } from './toc.js';

export type NodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

/** What a name means to overlayfs or to prefetch, beyond its file type. */
export type NodeRole = 'whiteout' | 'opaque-marker' | 'prefetch-landmark' | 'no-prefetch-landmark';

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
  /** Directories: base name → node (hardlinks appear under each of their names). */
  readonly children: ReadonlyMap<string, LayerNode> | undefined;
  /** A directory synthesised because the TOC only named things below it. */
  readonly implicit: boolean;
  readonly role: NodeRole | undefined;
  /** Directory holding `.wh..wh..opq`. */
  readonly opaque: boolean;
  /** TOC index of the defining entry; -1 for implicit directories. */
  readonly tocIndex: number;
}

export interface LayerModel {
  readonly root: LayerNode;
  /** `nodes[id - 1]`. */
  readonly nodes: readonly LayerNode[];
  /** Any name form (`./a/`, `/a`, `a`); hardlinks resolve to their target's node. */
  lookup(name: string): LayerNode | undefined;
  /** Blob offset up to which to prefetch (payload of the root `.prefetch.landmark`), if any. */
  readonly prefetchEnd: number | undefined;
  /** The root holds `.no.prefetch.landmark`. */
  readonly noPrefetch: boolean;
}

export function buildModel(toc: Toc): LayerModel {
  // By clean name: nodes of non-hardlink entries (later also hardlink names → their
  // target's node), and the hardlink entries themselves.
  const nodes = new Map<string, Node>();
  const links = new Map<string, TocEntry>();
  const own: (Node | undefined)[] = new Array(toc.entries.length);
  const uname = new Map<number, string>();
  const gname = new Map<number, string>();
  toc.entries.forEach((e, i) => {
    if (nodes.has(e.name) || links.has(e.name)) throw hostile('duplicate entry name', e);
    if (e.name === '' && e.type !== 'dir') throw hostile('root entry is not a directory', e);
    if (e.userName) uname.set(e.uid, e.userName);
    if (e.groupName) gname.set(e.gid, e.groupName);
    if (e.type === 'hardlink') links.set(e.name, e);
    else nodes.set(e.name, (own[i] = new Node(e, false, uname.get(e.uid) ?? '', gname.get(e.gid) ?? '')));
  });
  const root = dirFor('', nodes, links);

  // Entries of one directory usually follow each other: remember the last parent.
  let lastParentName: string | undefined;
  let lastParent = root;
  toc.entries.forEach((e, i) => {
    if (e.name === '') return;
    const pname = parentName(e.name);
    if (pname !== lastParentName) {
      lastParent = dirFor(pname, nodes, links);
      lastParentName = pname;
    }
    let node = own[i];
    if (!node) {
      node = resolveHardlink(e, nodes, links);
      nodes.set(e.name, node);
    }
    node.numLink++;
    addChild(lastParent, baseName(e.name), node);
  });

  const ordered = assignIds(root);
  let prefetchEnd: number | undefined;
  let noPrefetch = false;
  for (const [base, child] of root.children!) {
    if (child.type !== 'reg') continue;
    if (base === PREFETCH_LANDMARK) {
      child.role = 'prefetch-landmark';
      prefetchEnd = child.chunks[0]?.offset;
    } else if (base === NO_PREFETCH_LANDMARK) {
      child.role = 'no-prefetch-landmark';
      noPrefetch = true;
    }
  }
  return {
    root,
    nodes: ordered,
    lookup: (name) => nodes.get(cleanName(name)),
    prefetchEnd,
    noPrefetch,
  };
}

/**
 * A node reads its attributes from its TOC entry instead of copying them: the model of a
 * 100k-entry layer must stay small. The mtime is parsed on first use.
 */
class Node implements LayerNode {
  id = 0;
  numLink: number;
  readonly children: Map<string, Node> | undefined;
  role: NodeRole | undefined = undefined;
  opaque = false;
  private parsedMtime: TarTime | undefined;

  constructor(
    private readonly entry: TocEntry,
    readonly implicit: boolean,
    readonly userName: string,
    readonly groupName: string,
  ) {
    // An explicit directory starts with its own "." (its name adds one more); an implicit
    // one also counts the name in its parent, which no TOC entry will add.
    this.numLink = entry.type !== 'dir' ? 0 : implicit ? 2 : 1;
    this.children = entry.type === 'dir' ? new Map() : undefined;
  }

  get name(): string {
    return this.entry.name;
  }
  get type(): NodeType {
    return this.entry.type as NodeType;
  }
  get mode(): number {
    return this.entry.mode;
  }
  get uid(): number {
    return this.entry.uid;
  }
  get gid(): number {
    return this.entry.gid;
  }
  get mtime(): TarTime {
    return (this.parsedMtime ??= parseModtime(this.entry.modtime));
  }
  get size(): number {
    return this.entry.size;
  }
  get linkName(): string {
    return this.entry.type === 'symlink' ? this.entry.linkName : '';
  }
  get devMajor(): number {
    return this.entry.devMajor;
  }
  get devMinor(): number {
    return this.entry.devMinor;
  }
  get xattrs(): ReadonlyMap<string, Buffer> {
    return this.entry.xattrs;
  }
  get digest(): string {
    return this.entry.digest;
  }
  get chunks(): readonly Chunk[] {
    return this.entry.chunks;
  }
  get tocIndex(): number {
    return this.entry.index;
  }
}

/** The directory node for a clean name, creating it and its parents when the TOC has none. */
function dirFor(name: string, nodes: Map<string, Node>, links: Map<string, TocEntry>): Node {
  const found = nodes.get(name);
  if (found) {
    if (found.type !== 'dir') throw hostile('parent is not a directory', { name, index: found.tocIndex });
    return found;
  }
  const link = links.get(name);
  if (link) throw hostile('parent is a hardlink', link);
  const dir = new Node(implicitDir(name), true, '', '');
  nodes.set(name, dir);
  if (name !== '') addChild(dirFor(parentName(name), nodes, links), baseName(name), dir);
  return dir;
}

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

function implicitDir(name: string): TocEntry {
  return {
    index: -1,
    tocName: name,
    name,
    type: 'dir',
    size: 0,
    mode: 0o755,
    uid: 0,
    gid: 0,
    userName: '',
    groupName: '',
    modtime: '',
    linkName: '',
    devMajor: 0,
    devMinor: 0,
    xattrs: NO_XATTRS,
    digest: '',
    chunks: [],
  };
}

function addChild(dir: Node, base: string, child: Node): void {
  if (child.type === 'dir') dir.numLink++; // the child's ".."
  dir.children!.set(base, child);
  if (base === OPAQUE_MARKER) {
    dir.opaque = true;
    if (child.role === undefined) child.role = 'opaque-marker';
  } else if (base.startsWith(WHITEOUT_PREFIX) && child.role === undefined) {
    child.role = 'whiteout';
  }
}

/** Follows a hardlink chain to a non-link entry's node. */
function resolveHardlink(e: TocEntry, nodes: Map<string, Node>, links: Map<string, TocEntry>): Node {
  const seen = new Set<string>([e.name]);
  let cur = e;
  for (;;) {
    if (climbsAboveRoot(cur.linkName)) throw hostile('hardlink target escapes the root', e, { linkName: cur.linkName });
    const target = cleanName(cur.linkName);
    const next = links.get(target);
    if (!next) {
      // A node that is not an implicit directory: the target entry itself.
      const node = nodes.get(target);
      if (!node || node.implicit) throw hostile('hardlink target does not exist', e, { linkName: cur.linkName });
      if (node.type === 'dir') throw hostile('hardlink to a directory', e, { linkName: cur.linkName });
      return node;
    }
    if (seen.has(next.name)) throw hostile('hardlink cycle', e, { linkName: cur.linkName });
    seen.add(next.name);
    cur = next;
  }
}

/** Depth-first ids from 1, children in name order; a hardlinked node keeps its first id. */
function assignIds(root: Node): Node[] {
  const ordered: Node[] = [];
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.id !== 0) continue;
    n.id = ordered.length + 1;
    ordered.push(n);
    if (!n.children) continue;
    const names = [...n.children.keys()].sort();
    for (let i = names.length - 1; i >= 0; i--) {
      const child = n.children.get(names[i]!)!;
      if (child.id === 0) stack.push(child);
    }
  }
  return ordered;
}

function hostile(message: string, e: Pick<TocEntry, 'name' | 'index'>, extra: Record<string, string> = {}): SgError {
  return new SgError('HOSTILE_TOC', message, { entry: e.name, index: e.index, ...extra });
}
