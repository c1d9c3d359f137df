/**
 * The pre-parsed containerd API descriptors (src/containerd/api-descriptor.ts) are what the
 * .proto files say, and the service definitions made from them behave as @grpc/proto-loader's
 * loadSync with the options used before (keepCase, longs: Number, enums: String, defaults,
 * oneofs): same methods, paths, stream kinds and names; same bytes out, same objects in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import type * as Protobuf from 'protobufjs/light.js';
import { API_JSON } from '../src/containerd/api-descriptor.js';
import { messageType } from '../src/containerd/proto-codec.js';
import { API_DIR, API_FILES, DESCRIPTOR_MODULE, PROTO_ROOT, renderDescriptorModule } from '../src/containerd/gen-api-descriptor.js';
import { loadApiProtos } from '../src/containerd/proto.js';
import { snapshotsService, SNAPSHOTS_SERVICE } from '../src/service/proto.js';

const loaderOptions = { includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const reference = (file: string) => protoLoader.loadSync(`${API_DIR}/${file}`, loaderOptions);
const isService = (v: unknown): v is grpc.ServiceDefinition => typeof v === 'object' && v !== null && !('format' in v);

type AnyMethod = grpc.MethodDefinition<object, object>;

test('the checked-in descriptor module is what the .proto files generate', () => {
  assert.equal(readFileSync(DESCRIPTOR_MODULE, 'utf8'), renderDescriptorModule(), 'run: npx tsc -p . && node dist/src/containerd/gen-api-descriptor.js');
});

/** Samples per message field set: every method's request and response gets these merged where the fields fit. */
const SAMPLES: Record<string, object> = {
  '/containerd.services.content.v1.Content/Write': {
    action: 'COMMIT', ref: 'layer-sha256:ab', total: 2 ** 40 + 3, expected: 'sha256:ab', offset: 12345678901, data: Buffer.from('hello'), labels: { a: 'b' },
  },
  '/containerd.services.content.v1.Content/Info': { digest: 'sha256:cd' },
  '/containerd.services.content.v1.Content/Update': { info: { digest: 'sha256:cd', size: 99, labels: { x: 'y' }, created_at: { seconds: 1700000000, nanos: 5 } }, update_mask: { paths: ['labels.x'] } },
  '/containerd.services.content.v1.Content/Read': { digest: 'sha256:ef', offset: 1, size: 2 },
  '/containerd.services.snapshots.v1.Snapshots/Prepare': { snapshotter: 'stargz', key: 'k', parent: 'p', labels: { 'containerd.io/snapshot.ref': 'sha256:1' } },
  '/containerd.services.snapshots.v1.Snapshots/Stat': { snapshotter: 'stargz', key: 'k' },
  '/containerd.services.snapshots.v1.Snapshots/Usage': { snapshotter: 'stargz', key: 'k' },
  '/containerd.services.diff.v1.Diff/Apply': {
    diff: { media_type: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:1', size: 10, annotations: { a: 'b' } },
    mounts: [{ type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/a'] }],
    payloads: {},
  },
  '/containerd.services.images.v1.Images/Create': { image: { name: 'bafy', labels: {}, target: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: 'sha256:2', size: 3 } } },
  '/containerd.services.leases.v1.Leases/Create': { id: 'l', labels: { 'containerd.io/gc.expire': '2026-01-01T00:00:00Z' } },
};

const RESPONSE_SAMPLES: Record<string, object> = {
  '/containerd.services.content.v1.Content/Write': { action: 'WRITE', started_at: { seconds: 1, nanos: 2 }, offset: 2 ** 33, total: 2 ** 34, digest: 'sha256:ab' },
  '/containerd.services.content.v1.Content/Info': { info: { digest: 'sha256:cd', size: 2 ** 35, labels: { a: 'b' } } },
  '/containerd.services.snapshots.v1.Snapshots/Prepare': { mounts: [{ type: 'fuse', source: 's', target: 't', options: ['ro'] }] },
  '/containerd.services.snapshots.v1.Snapshots/Stat': { info: { name: 'n', parent: 'p', kind: 'COMMITTED', labels: { x: 'y' } } },
  '/containerd.services.snapshots.v1.Snapshots/Usage': { size: 2 ** 36, inodes: 7 },
};

for (const file of API_FILES) {
  test(`${file}: services as proto-loader made them`, () => {
    const ref = reference(file);
    const ours = loadApiProtos([file]) as Record<string, unknown>;
    const refServices = Object.entries(ref).filter(([, v]) => isService(v));
    assert.deepEqual(Object.keys(ours).sort(), refServices.map(([k]) => k).sort());
    for (const [name, refService] of refServices) {
      const svc = ours[name] as Record<string, AnyMethod>;
      const want = refService as Record<string, AnyMethod>;
      assert.deepEqual(Object.keys(svc).sort(), Object.keys(want).sort(), name);
      for (const [method, w] of Object.entries(want)) {
        const m = svc[method]!;
        assert.equal(m.path, w.path);
        assert.equal(m.requestStream, w.requestStream, w.path);
        assert.equal(m.responseStream, w.responseStream, w.path);
        assert.equal(m.originalName, w.originalName, w.path);
        const pairs: [string, object | undefined, (v: object) => Buffer, (b: Buffer) => object, (v: object) => Buffer, (b: Buffer) => object][] = [
          ['request', SAMPLES[w.path], m.requestSerialize, m.requestDeserialize, w.requestSerialize, w.requestDeserialize],
          ['response', RESPONSE_SAMPLES[w.path], m.responseSerialize, m.responseDeserialize, w.responseSerialize, w.responseDeserialize],
        ];
        for (const [what, sample, ser, de, refSer, refDe] of pairs) {
          const ctx = `${w.path} ${what}`;
          // Every field at its default, then (where given) a realistic message.
          assert.deepEqual(de(Buffer.alloc(0)), refDe(Buffer.alloc(0)), ctx);
          assert.deepEqual(ser(de(Buffer.alloc(0))), refSer(refDe(Buffer.alloc(0))), ctx);
          if (sample) {
            const bytes = refSer(sample);
            assert.ok(bytes.length > 0, ctx);
            assert.deepEqual(ser(sample), bytes, ctx);
            assert.deepEqual(de(bytes), refDe(bytes), ctx);
          }
          assert.throws(() => ser([] as unknown as object), /expected object/);
        }
      }
    }
  });
}

test('the Snapshots server definition is the snapshots.proto service', () => {
  assert.equal(snapshotsService, loadApiProtos(['snapshots/v1/snapshots.proto'])[SNAPSHOTS_SERVICE]);
  assert.throws(() => loadApiProtos(['nope/v1/nope.proto']), /unknown containerd API file/);
});

/** A random value for a field of protobufjs type `t` (messages down to `depth`). */
function randomValue(t: Protobuf.Type | Protobuf.Enum | string, depth: number, rnd: () => number): unknown {
  if (typeof t !== 'string') {
    if ('values' in t) {
      const names = Object.keys(t.values);
      // Sometimes a number the enum does not name: kept as the number.
      return rnd() < 0.1 ? 7 + Math.floor(rnd() * 5) : names[Math.floor(rnd() * names.length)];
    }
    return depth <= 0 ? {} : randomMessage(t, depth - 1, rnd);
  }
  switch (t) {
    case 'string':
      return ['', 'a', 'sha256:ab', 'ünïcødé ✓', 'x'.repeat(300)][Math.floor(rnd() * 5)];
    case 'bytes':
      return Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
    case 'bool':
      return rnd() < 0.5;
    case 'int32':
      return [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 300][Math.floor(rnd() * 6)];
    default:
      return [0, 1, 127, 128, 2 ** 32, 2 ** 40 + 3, 2 ** 53 - 1, ...(t === 'int64' ? [-1, -(2 ** 40)] : [])][Math.floor(rnd() * (t === 'int64' ? 9 : 7))];
  }
}

function randomMessage(type: Protobuf.Type, depth: number, rnd: () => number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    if (rnd() < 0.25) continue;
    f.resolve();
    const t = f.resolvedType ?? f.type;
    if (f.map) out[f.name] = Object.fromEntries(Array.from({ length: Math.floor(rnd() * 3) }, (_, i) => [`k${i}.${Math.floor(rnd() * 100)}`, randomValue(t, depth, rnd)]));
    else if (f.repeated) out[f.name] = Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(t, depth, rnd));
    else out[f.name] = randomValue(t, depth, rnd);
  }
  return out;
}

test('every message type: our codec writes the bytes protobufjs writes and reads back what protobufjs reads (random messages)', () => {
  const protobuf = createRequire(import.meta.url)('protobufjs/dist/light/protobuf.min.js') as typeof Protobuf;
  const root = protobuf.Root.fromJSON(API_JSON as Protobuf.INamespace);
  const toObject = { longs: Number, enums: String, defaults: true };
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const names: string[] = [];
  const walk = (ns: Protobuf.NamespaceBase, prefix: string) => {
    for (const o of ns.nestedArray) {
      const full = prefix ? `${prefix}.${o.name}` : o.name;
      if (o instanceof protobuf.Type) names.push(full);
      if ('nestedArray' in o) walk(o as Protobuf.NamespaceBase, full);
    }
  };
  walk(root, '');
  assert.ok(names.length > 60, `${names.length} message types`);
  let checked = 0;
  for (const name of names) {
    const ref = root.lookupType(name);
    const ours = messageType(name);
    for (let i = 0; i < 20; i++) {
      const obj = randomMessage(ref, 2, rnd);
      const want = Buffer.from(ref.encode(ref.fromObject(obj)).finish());
      assert.deepEqual(ours.encode(obj), want, `${name} encode ${JSON.stringify(obj)}`);
      assert.deepEqual(ours.decode(want), ref.toObject(ref.decode(want), toObject), `${name} decode`);
      checked++;
    }
  }
  assert.ok(checked > 1000);
});

test('our codec refuses truncated and malformed messages with an error, never a wrong object', () => {
  const t = messageType('containerd.services.content.v1.WriteContentRequest');
  const good = t.encode({ action: 'WRITE', ref: 'r', offset: 2 ** 40, data: Buffer.from('hello world') });
  for (let cut = 1; cut < good.length; cut++) {
    let decoded: Record<string, unknown> | undefined;
    try {
      decoded = t.decode(good.subarray(0, cut));
    } catch (err) {
      assert.match(String(err), /protobuf: /);
      continue;
    }
    // A cut exactly between fields is a shorter valid message: only complete fields in it.
    assert.ok(decoded.ref === '' || decoded.ref === 'r');
  }
  assert.throws(() => t.decode(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])), /length past the end/);
  assert.throws(() => t.decode(Buffer.from([0x0a, 0x01, 0x00])), /wire type 2 for a varint field/);
  assert.throws(() => t.decode(Buffer.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), /varint longer/);
});
