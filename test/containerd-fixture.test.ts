import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { buildBusyboxImage } from './harness/busybox-image.js';

let scratch: string;
let ctd: Containerd | undefined;

before(async () => {
  reapStale();
  scratch = makeScratch();
  ctd = await startContainerd(scratch);
});
after(async () => {
  await ctd?.stop();
  destroyScratch(scratch);
});

test('containerd fixture: ctr run of the busybox image with overlayfs prints hello', async () => {
  const img = buildBusyboxImage(scratch);
  await ctd!.ctr(['images', 'import', img.tarPath]);
  const out = await ctd!.ctr(['run', '--rm', '--snapshotter', 'overlayfs', img.name, 'hello-1', '/bin/echo', 'hello']);
  assert.equal(out.trim(), 'hello');
  assert.deepEqual(mountsUnder(scratch), [], 'the container rootfs is unmounted after --rm');
});
