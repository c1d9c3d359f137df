/**
 * The index saved by a clean close, so that a restart need not lstat every file (4 s per
 * million entries here). It is taken, that is read and deleted, at open: after a crash
 * there is none and open rescans the directory, which is always right. Sizes in it cannot
 * go stale (a file's name is its content digest); a file missing since is a miss on read.
 *
 * Format: "SGCACHE1", then per entry, least recently used first, 32 bytes of digest and a
 * 6-byte little-endian size, then the sha256 of everything before it.
 */
import { createHash } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IndexEntry } from './scan.js';

const MAGIC = Buffer.from('SGCACHE1');
const RECORD = 38;
const CHECKSUM = 32;

export async function writeSnapshot(path: string, entries: Iterable<IndexEntry>, count: number): Promise<void> {
  const buf = Buffer.allocUnsafe(MAGIC.length + count * RECORD + CHECKSUM);
  MAGIC.copy(buf, 0);
  let off = MAGIC.length;
  for (const { hex, size } of entries) {
    buf.write(hex, off, 'hex');
    buf.writeUIntLE(size, off + 32, 6);
    off += RECORD;
  }
  createHash('sha256').update(buf.subarray(0, off)).digest().copy(buf, off);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, buf.subarray(0, off + CHECKSUM));
  await rename(tmp, path);
}

/**
 * The saved entries, or undefined when there is no snapshot or it does not check out
 * (a torn write: the rename is not fsynced). Deleted either way.
 */
export async function takeSnapshot(path: string): Promise<IndexEntry[] | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  } finally {
    await rm(path, { force: true });
    await rm(`${path}.tmp`, { force: true });
  }
  const body = buf.length - CHECKSUM;
  if (body < MAGIC.length || (body - MAGIC.length) % RECORD !== 0 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (!createHash('sha256').update(buf.subarray(0, body)).digest().equals(buf.subarray(body))) return undefined;
  const entries: IndexEntry[] = [];
  for (let off = MAGIC.length; off < body; off += RECORD) {
    entries.push({ hex: buf.toString('hex', off, off + 32), size: buf.readUIntLE(off + 32, 6) });
  }
  return entries;
}
