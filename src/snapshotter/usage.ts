/**
 * Disk usage of a directory tree as containerd counts it (continuity fs.DiskUsage):
 * allocated blocks × 512, every inode once (hard links are not counted twice), the root
 * included. Used for active snapshots (scanned on demand) and stored at commit.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Usage } from './types.js';

export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      size += st.blocks * 512;
    }
    if (!st.isDirectory()) return;
    for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(root);
  return { size, inodes: seen.size };
}
