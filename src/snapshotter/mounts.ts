/**
 * The mounts handed to containerd for an active or view snapshot (spec §2.5), as a pure
 * function of the snapshot's id, kind and parent chain.
 *
 *   no parent            bind  <id>/fs            rw,rbind (active) | ro,rbind (view)
 *   view, one parent     bind  <parent>/fs        ro,rbind
 *   active, ≥1 parent    overlay  workdir=<id>/work upperdir=<id>/fs lowerdir=<p0>:<p1>…
 *   view, ≥2 parents     overlay  lowerdir=<p0>:<p1>…
 *
 * lowerdir lists the immediate parent first: overlayfs gives the leftmost priority.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Snapshot } from './store.js';
import type { Mount } from './types.js';

export const fsDir = (snapshotsDir: string, id: string): string => join(snapshotsDir, id, 'fs');
export const workDir = (snapshotsDir: string, id: string): string => join(snapshotsDir, id, 'work');

export function buildMounts(snapshotsDir: string, s: Snapshot, userxattr: boolean): Mount[] {
  const [first] = s.parentIds;
  if (first === undefined) {
    return [{ type: 'bind', source: fsDir(snapshotsDir, s.id), options: [s.kind === 'active' ? 'rw' : 'ro', 'rbind'] }];
  }
  if (s.kind === 'view' && s.parentIds.length === 1) {
    return [{ type: 'bind', source: fsDir(snapshotsDir, first), options: ['ro', 'rbind'] }];
  }
  const options: string[] = [];
  if (s.kind === 'active') options.push(`workdir=${workDir(snapshotsDir, s.id)}`, `upperdir=${fsDir(snapshotsDir, s.id)}`);
  options.push(`lowerdir=${s.parentIds.map((id) => fsDir(snapshotsDir, id)).join(':')}`);
  if (userxattr) options.push('userxattr');
  return [{ type: 'overlay', source: 'overlay', options }];
}

/**
 * Whether overlay needs `userxattr`: only inside a user namespace (rootless), where the
 * kernel (5.11+) refuses trusted.* xattrs. containerd's NeedsUserXAttr also probes old
 * kernels with a test mount; the daemon runs as real root in the initial namespace, where
 * the answer is always no, so reading our uid map is enough.
 */
export function needsUserXattr(uidMapPath = '/proc/self/uid_map'): boolean {
  try {
    const [inside, outside, count] = readFileSync(uidMapPath, 'utf8').trim().split(/\s+/);
    return !(inside === '0' && outside === '0' && count === '4294967295');
  } catch {
    return false;
  }
}
