/**
 * The cache directory at open: make the layout, drop what a crash left, and (when no
 * snapshot of the index was saved) rebuild the index from the files themselves.
 *
 * Synchronous calls per prefix directory: measured here, lstatSync is about 3× faster than
 * the promise API for a million small files, and the event loop gets a turn between
 * directories. Still ~4 µs a file, which is why a clean close saves a snapshot.
 */
import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

export interface IndexEntry {
  readonly hex: string;
  readonly size: number;
}

const NAME = /^[0-9a-f]{64}$/;

export const prefixes: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Creates the 256 prefix directories. */
export function prepareDirs(dir: string): void {
  for (const prefix of prefixes) mkdirSync(join(dir, prefix), { recursive: true });
}

/**
 * Every cache file under `dir`, least recently used first by max(atime, mtime). Anything
 * else in the prefix directories (a write cut short by a crash, a stray or misplaced
 * name) is deleted.
 */
export async function scanEntries(dir: string): Promise<IndexEntry[]> {
  const found: (IndexEntry & { usedAt: number })[] = [];
  for (const prefix of prefixes) {
    const sub = join(dir, prefix);
    for (const name of readdirSync(sub)) {
      const path = `${sub}/${name}`;
      const st = NAME.test(name) && name.startsWith(prefix) ? lstatSync(path, { throwIfNoEntry: false }) : undefined;
      if (st?.isFile()) {
        found.push({ hex: name, size: st.size, usedAt: Math.max(st.atimeMs, st.mtimeMs) });
      } else {
        rmSync(path, { recursive: true, force: true });
      }
    }
    await nextTurn();
  }
  return found.sort((a, b) => a.usedAt - b.usedAt);
}
