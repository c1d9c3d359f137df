/**
 * Node ids the kernel holds → paths in the layer, counted by lookups and dropped on
 * FORGET. A node id is the layer's inode number, so every name of a hardlinked file is
 * one kernel inode (one page cache); only the root is special, as the kernel calls it 1.
 * Inode 1 (upstream's state directory) then takes the root's own number as node id.
 */
import { ROOT_ID } from './protocol.js';

interface Node {
  readonly path: string;
  lookups: number;
}

export class NodeTable {
  private readonly nodes = new Map<number, Node>();

  constructor(private readonly rootIno: number) {
    this.nodes.set(ROOT_ID, { path: '/', lookups: 1 });
  }

  /** The node id for an inode number: a bijection that swaps 1 and the root's inode. */
  idOf(ino: number): number {
    if (ino === this.rootIno) return ROOT_ID;
    if (ino === ROOT_ID) return this.rootIno;
    return ino;
  }

  pathOf(nodeid: number): string | undefined {
    return this.nodes.get(nodeid)?.path;
  }

  /** One more kernel reference to `nodeid`, reached at `path` (the first name is kept for hardlinks). */
  lookedUp(nodeid: number, path: string): void {
    const n = this.nodes.get(nodeid);
    if (n) n.lookups++;
    else this.nodes.set(nodeid, { path, lookups: 1 });
  }

  forget(nodeid: number, count: number): void {
    if (nodeid === ROOT_ID) return;
    const n = this.nodes.get(nodeid);
    if (!n) return;
    n.lookups -= count;
    if (n.lookups <= 0) this.nodes.delete(nodeid);
  }

  /** Nodes the kernel references, the root included. */
  get size(): number {
    return this.nodes.size;
  }
}
