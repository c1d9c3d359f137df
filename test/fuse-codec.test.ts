/**
 * The FUSE wire structs as linux/fuse.h lays them out: what the kernel would misread
 * silently if an offset were wrong (dirent padding and offsets, 64-bit fields, times
 * before 1970), and the node id scheme.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { attrOut, dirents, entryOut, outHeader, parseHeader, readU64 } from '../src/fuse/protocol.js';
import { NodeTable } from '../src/fuse/node-table.js';
import type { Attr } from '../src/layer/fs-api.js';

const attr = (over: Partial<Attr> = {}): Attr => ({
  ino: 2 ** 32 + 7, mode: 0o100644, nlink: 2, uid: 1000, gid: 1001, size: 2 ** 40 + 3, rdev: 0, blocks: 16, mtime: new Date(1_700_000_000_123), ...over,
});

describe('structs', () => {
  it('fuse_in_header and fuse_out_header', () => {
    const h = Buffer.alloc(40);
    h.writeUInt32LE(40, 0);
    h.writeUInt32LE(15, 4);
    h.writeBigUInt64LE(2n ** 40n + 2n, 8);
    h.writeBigUInt64LE(9n, 16);
    h.writeUInt32LE(1, 24);
    h.writeUInt32LE(2, 28);
    h.writeUInt32LE(3, 32);
    assert.deepEqual(parseHeader(h), { len: 40, opcode: 15, unique: 2 ** 40 + 2, nodeid: 9, uid: 1, gid: 2, pid: 3 });
    const out = outHeader(16, -34, 2 ** 40 + 2);
    assert.equal(out.readUInt32LE(0), 16);
    assert.equal(out.readInt32LE(4), -34);
    assert.equal(out.readBigUInt64LE(8), 2n ** 40n + 2n);
  });

  it('fuse_attr inside fuse_entry_out: 64-bit fields, mtime with nanoseconds, blksize', () => {
    const b = entryOut(9, attr(), { entrySec: 3, attrSec: 5 });
    assert.equal(b.length, 128);
    assert.equal(b.readBigUInt64LE(0), 9n);
    assert.equal(b.readBigUInt64LE(16), 3n);
    assert.equal(b.readBigUInt64LE(24), 5n);
    const a = 40;
    assert.equal(readU64(b, a), 2 ** 32 + 7);
    assert.equal(readU64(b, a + 8), 2 ** 40 + 3);
    assert.equal(b.readBigInt64LE(a + 32), 1_700_000_000n);
    assert.equal(b.readUInt32LE(a + 52), 123_000_000);
    assert.equal(b.readUInt32LE(a + 60), 0o100644);
    assert.equal(b.readUInt32LE(a + 64), 2);
    assert.equal(b.readUInt32LE(a + 68), 1000);
    assert.equal(b.readUInt32LE(a + 72), 1001);
    assert.equal(b.readUInt32LE(a + 80), 4096);
  });

  it('a time before 1970 is a negative 64-bit second count and a positive nanosecond part', () => {
    const b = attrOut(attr({ mtime: new Date(-1500) }), { entrySec: 1, attrSec: 1 });
    assert.equal(b.readBigInt64LE(16 + 32), -2n);
    assert.equal(b.readUInt32LE(16 + 52), 500_000_000);
  });

  it('a negative entry: node id 0, the name cached, no attributes', () => {
    const b = entryOut(0, undefined, { entrySec: 7, attrSec: 5 });
    assert.equal(b.readBigUInt64LE(0), 0n);
    assert.equal(b.readBigUInt64LE(16), 7n);
    assert.ok(b.subarray(24).every((x) => x === 0));
  });

  it('fuse_dirent records: 8-byte aligned, off = index after, DT_* type, stop at the size', () => {
    const entries = [
      { name: '.', ino: 4, mode: 0o40755 },
      { name: 'héllo', ino: 10, mode: 0o100644 },
      { name: 'link', ino: 11, mode: 0o120777 },
    ];
    const all = dirents(entries, 0, 4096);
    assert.equal(all.length, 32 + 32 + 32);
    assert.equal(all.readBigUInt64LE(32), 10n);
    assert.equal(all.readBigUInt64LE(32 + 8), 2n);
    assert.equal(all.readUInt32LE(32 + 16), Buffer.byteLength('héllo'));
    assert.equal(all.readUInt32LE(32 + 20), 8, 'DT_REG');
    assert.equal(all.toString('utf8', 32 + 24, 32 + 24 + 6), 'héllo');
    assert.equal(all.readUInt32LE(64 + 20), 10, 'DT_LNK');
    assert.equal(dirents(entries, 1, 63).length, 32, 'only whole records that fit');
    assert.equal(dirents(entries, 3, 4096).length, 0, 'past the end: empty');
  });
});

describe('node ids', () => {
  it('are inode numbers, with the root (1 to the kernel) and inode 1 swapped', () => {
    const t = new NodeTable(4);
    assert.equal(t.idOf(4), 1);
    assert.equal(t.idOf(1), 4);
    assert.equal(t.idOf(2), 2);
    assert.equal(t.idOf(99), 99);
    assert.equal(t.pathOf(1), '/');
  });

  it('live while looked up, dropped when the kernel forgets every lookup; the root never', () => {
    const t = new NodeTable(4);
    t.lookedUp(14, '/a/f1.txt');
    t.lookedUp(14, '/a/hard1');
    assert.equal(t.pathOf(14), '/a/f1.txt', 'hardlinks: the first name serves');
    t.forget(14, 1);
    assert.equal(t.pathOf(14), '/a/f1.txt');
    t.forget(14, 1);
    assert.equal(t.pathOf(14), undefined);
    t.forget(1, 100);
    assert.equal(t.pathOf(1), '/');
    assert.equal(t.size, 1);
  });
});
