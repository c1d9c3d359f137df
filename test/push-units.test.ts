/** The pure parts of ipfs-push: document bytes, media types, platform filter, progress lines. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { marshalConfig, marshalDescriptor, marshalIndex, marshalManifest } from '../src/push/json.js';
import { compressionOf, estargzMediaType, kindOf, toOci } from '../src/push/media-types.js';
import { platformFilter } from '../src/push/platforms.js';
import { parsePlatform, hostPlatform } from '../src/ipfs/platform.js';
import { progressPrinter } from '../src/cli/progress.js';
import type { PushEvent } from '../src/push/events.js';

const D = `sha256:${'a'.repeat(64)}`;

test('documents: OCI field order, sorted maps, unknown fields kept, no whitespace', () => {
  const layer = { annotations: { z: '1', a: '2' }, urls: ['ipfs://x'], size: 3, digest: D, mediaType: 'm', extra: true };
  assert.equal(marshalDescriptor(layer).toString(), `{"mediaType":"m","digest":"${D}","size":3,"urls":["ipfs://x"],"annotations":{"a":"2","z":"1"},"extra":true}`);
  const manifest = { layers: [layer], config: { size: 1, digest: D, mediaType: 'c' }, mediaType: 'mm', schemaVersion: 2, annotations: { b: '', a: '' } };
  assert.match(marshalManifest(manifest).toString(), /^\{"schemaVersion":2,"mediaType":"mm","config":\{"mediaType":"c",.*"layers":\[\{"mediaType":"m",.*\],"annotations":\{"a":"","b":""\}\}$/);
  const index = { manifests: [{ platform: { variant: 'v8', os: 'linux', architecture: 'arm64' }, size: 1, digest: D, mediaType: 'x' }], schemaVersion: 2 };
  assert.equal(marshalIndex(index).toString(), `{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"${D}","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`);
  // A config's top level is sorted, values untouched (inner key order included).
  assert.equal(marshalConfig({ rootfs: { type: 'layers', diff_ids: [] }, config: { Z: 1, A: 2 }, architecture: 'amd64' }).toString(), '{"architecture":"amd64","config":{"Z":1,"A":2},"rootfs":{"type":"layers","diff_ids":[]}}');
  // Same document, any key order in → same bytes out.
  assert.ok(marshalManifest(manifest).equals(marshalManifest({ ...manifest, schemaVersion: 2 })));
});

test('media types: Docker → OCI, kinds, compression, the eStargz layer type', () => {
  assert.equal(toOci('application/vnd.docker.distribution.manifest.list.v2+json'), 'application/vnd.oci.image.index.v1+json');
  assert.equal(toOci('application/vnd.docker.distribution.manifest.v2+json'), 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(toOci('application/vnd.docker.container.image.v1+json'), 'application/vnd.oci.image.config.v1+json');
  assert.equal(toOci('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.equal(toOci('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip');
  assert.equal(toOci('application/vnd.in-toto+json'), 'application/vnd.in-toto+json');
  assert.equal(kindOf('application/vnd.docker.image.rootfs.diff.tar'), 'layer');
  assert.equal(kindOf('application/vnd.oci.image.layer.v1.tar+zstd'), 'layer');
  assert.equal(kindOf('application/vnd.in-toto+json'), 'other');
  assert.equal(compressionOf('application/vnd.docker.image.rootfs.diff.tar'), 'none');
  assert.equal(compressionOf('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
  assert.equal(compressionOf('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
  assert.equal(estargzMediaType('application/vnd.oci.image.layer.v1.tar'), 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.equal(estargzMediaType('application/vnd.docker.image.rootfs.foreign.diff.tar'), 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip');
});

test('platform filter: strict host by default, a list, all; entries without a platform stay', () => {
  const p = (s: string) => parsePlatform(s)!;
  const host = platformFilter({});
  assert.ok(host.matches(hostPlatform()));
  assert.ok(host.matches(undefined));
  assert.equal(host.describe, `linux/${hostPlatform().architecture}`);
  const arm = platformFilter({ platforms: ['linux/arm/v7', 'linux/arm64'] });
  assert.ok(arm.matches(p('linux/arm/v7')));
  assert.ok(!arm.matches(p('linux/arm/v6')), 'strict: no older variant');
  assert.ok(arm.matches({ os: 'linux', architecture: 'aarch64' }));
  assert.ok(arm.matches(p('linux/arm64/v8')));
  assert.ok(!arm.matches(p('linux/amd64')));
  assert.equal(arm.describe, 'linux/arm/v7, linux/arm64');
  assert.ok(platformFilter({ all: true }).matches(p('windows/amd64')));
  assert.throws(() => platformFilter({ platforms: ['linux'] }), /invalid platform "linux"/);
});

test('progress: one line per step, byte totals at most once per interval', () => {
  let t = 0;
  const out: string[] = [];
  const emit = progressPrinter({ write: (s) => out.push(s) }, { intervalMs: 1000, now: () => t });
  const events: PushEvent[] = [
    { type: 'start', image: 'x:1', layers: 2, platforms: 'linux/amd64' },
    { type: 'layer', index: 1, total: 2, digest: D, action: 'convert' },
    { type: 'bytes', added: 0, planned: 1 << 20 },
    { type: 'bytes', added: 1 << 19, planned: 1 << 20 },
    { type: 'layer-done', index: 1, total: 2, digest: D, size: 1 << 20 },
  ];
  events.forEach(emit);
  t = 1000;
  emit({ type: 'bytes', added: 1 << 20, planned: 1 << 20 });
  assert.deepEqual(out, [
    'pushing x:1: 2 layer(s), linux/amd64\n',
    'layer 1/2 sha256:aaaaaaaaaaaa: converting to eStargz\n',
    'added 0.0 MiB / 1.0 MiB\n',
    'layer 1/2 done: sha256:aaaaaaaaaaaa 1.0 MiB\n',
    'added 1.0 MiB / 1.0 MiB\n',
  ]);
});
