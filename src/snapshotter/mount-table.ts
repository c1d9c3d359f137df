/**
 * Kernel mounts below a directory, read from /proc/self/mountinfo. The snapshotter uses
 * this to find mounts a crashed daemon left behind and to make sure it never deletes a
 * directory that still has something mounted inside it.
 */
import { readFile } from 'node:fs/promises';
import { unescapeMountinfo } from '../fuse/kernel-mount.js';

/** Mount points at or below `dir`, deepest first. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = unescapeMountinfo(field);
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}
