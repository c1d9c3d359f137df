/**
 * Kernel mounts below a directory, read from /proc/self/mountinfo, and detaching them.
 * The snapshotter uses this to clear mounts a crashed daemon left behind and to make sure
 * it never deletes a directory that still has something mounted inside it.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Mount points at or below `dir`, deepest first. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Detaches `mountpoint`: a plain unmount, then a lazy one, which also clears a FUSE mount
 * whose server died ("Transport endpoint is not connected") and one that is still busy.
 */
export async function detach(mountpoint: string): Promise<void> {
  try {
    await execFileAsync('umount', [mountpoint]);
  } catch {
    await execFileAsync('umount', ['-l', mountpoint]);
  }
}
