/**
 * Kernel mounts below a directory, read from /proc/self/mountinfo. The snapshotter uses
 * this to find mounts a crashed daemon left behind and to make sure it never deletes a
 * directory that still has something mounted inside it.
 */
import { mountTable } from '../fuse/kernel-mount.js';

/** Mount points at or below `dir`, deepest first. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const out = (await mountTable()).map((m) => m.mountpoint).filter((mp) => mp === dir || mp.startsWith(dir + '/'));
  return out.sort((a, b) => b.length - a.length);
}
