import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { buildMounts, needsUserXattr } from '../src/snapshotter/mounts.js';

const dir = '/r/snapshotter/snapshots';

test('no parent: one bind of the own fs, rw for active, ro for a view', () => {
  assert.deepEqual(buildMounts(dir, { id: '7', kind: 'active', parentIds: [] }, false), [{ type: 'bind', source: `${dir}/7/fs`, options: ['rw', 'rbind'] }]);
  assert.deepEqual(buildMounts(dir, { id: '7', kind: 'view', parentIds: [] }, false), [{ type: 'bind', source: `${dir}/7/fs`, options: ['ro', 'rbind'] }]);
});

test('a view with one parent binds the parent read-only', () => {
  assert.deepEqual(buildMounts(dir, { id: '9', kind: 'view', parentIds: ['4'] }, false), [{ type: 'bind', source: `${dir}/4/fs`, options: ['ro', 'rbind'] }]);
});

test('active with parents: overlay, lowerdir immediate parent first', () => {
  assert.deepEqual(buildMounts(dir, { id: '9', kind: 'active', parentIds: ['5', '2', '1'] }, false), [
    {
      type: 'overlay',
      source: 'overlay',
      options: [`workdir=${dir}/9/work`, `upperdir=${dir}/9/fs`, `lowerdir=${dir}/5/fs:${dir}/2/fs:${dir}/1/fs`],
    },
  ]);
});

test('a view with two or more parents: overlay with lowerdir only; userxattr appended when needed', () => {
  assert.deepEqual(buildMounts(dir, { id: '9', kind: 'view', parentIds: ['5', '2'] }, true), [
    { type: 'overlay', source: 'overlay', options: [`lowerdir=${dir}/5/fs:${dir}/2/fs`, 'userxattr'] },
  ]);
});

test('userxattr is needed only inside a user namespace', () => {
  const d = mkdtempSync(join(tmpdir(), 'uidmap-'));
  try {
    writeFileSync(join(d, 'init'), '         0          0 4294967295\n');
    writeFileSync(join(d, 'userns'), '         0       1000          1\n');
    assert.equal(needsUserXattr(join(d, 'init')), false);
    assert.equal(needsUserXattr(join(d, 'userns')), true);
    assert.equal(needsUserXattr(), false, 'the tests run as real root');
  } finally {
    rmSync(d, { recursive: true });
  }
});
