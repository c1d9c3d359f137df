/**
 * containerd's own Content, Images, Leases, Diff and Snapshots APIs (proto/github.com/
 * containerd/containerd/api/services/…, containerd 1.6's files), and generic clients for them.
 *
 * Start-up matters here (every `rpull` pays it): the .proto files are not parsed at run time
 * but pre-parsed into api-descriptor.ts (gen-api-descriptor.ts; a test checks that it matches
 * the files), read with protobufjs' light build (one bundled file, no parser), and a
 * service's definition is made only when asked for. Messages convert exactly as with
 * @grpc/proto-loader's options keepCase, longs: Number, enums: String, defaults, oneofs.
 */
import { createRequire } from 'node:module';
import type * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import type * as Protobuf from 'protobufjs/light.js';
import { API_JSON, API_SERVICES } from './api-descriptor.js';
import type { GrpcChannel } from './grpc-h2.js';

export const SERVICES = {
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  leases: 'containerd.services.leases.v1.Leases',
  snapshots: 'containerd.services.snapshots.v1.Snapshots',
  diff: 'containerd.services.diff.v1.Diff',
} as const;
export type ServiceName = keyof typeof SERVICES;

/** proto-loader's conversion options, as every client and server here used them. */
const TO_OBJECT: Protobuf.IConversionOptions = {
  // int64 sizes, offsets and timestamps: any real blob, disk or date fits a double exactly.
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let root: Protobuf.Root | undefined;

function apiRoot(): Protobuf.Root {
  if (!root) {
    // The bundled light build: one file to load instead of protobufjs' ~40 modules.
    const protobuf = createRequire(import.meta.url)('protobufjs/dist/light/protobuf.min.js') as typeof Protobuf;
    root = protobuf.Root.fromJSON(API_JSON as Protobuf.INamespace);
  }
  return root;
}

const services = new Map<string, grpc.ServiceDefinition>();

/** The gRPC definition of service `name` (e.g. `containerd.services.content.v1.Content`), made on first use. */
export function serviceDefinition(name: string): grpc.ServiceDefinition {
  let def = services.get(name);
  if (!def) {
    const service = apiRoot().lookupService(name);
    const methods: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const m of service.methodsArray) {
      m.resolve();
      const req = m.resolvedRequestType!;
      const res = m.resolvedResponseType!;
      methods[m.name] = {
        path: `/${name}/${m.name}`,
        requestStream: !!m.requestStream,
        responseStream: !!m.responseStream,
        requestSerialize: serializer(req),
        requestDeserialize: deserializer(req),
        responseSerialize: serializer(res),
        responseDeserialize: deserializer(res),
        // proto-loader's camelCase of the method name (all of containerd's are plain PascalCase).
        originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
      };
    }
    services.set(name, (def = methods as grpc.ServiceDefinition));
  }
  return def;
}

function serializer(type: Protobuf.Type): (arg: object) => Buffer {
  return (arg) => {
    if (Array.isArray(arg)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    const w = type.encode(type.fromObject(arg as Record<string, unknown>)).finish();
    return Buffer.isBuffer(w) ? w : Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  };
}

function deserializer(type: Protobuf.Type): (buf: Buffer) => object {
  return (buf) => type.toObject(type.decode(buf), TO_OBJECT);
}

/**
 * The services of containerd API .proto files (paths below proto/github.com/containerd/
 * containerd/api/services/, e.g. `snapshots/v1/snapshots.proto`), by full name, the one way
 * every client and server here gets them.
 */
export function loadApiProtos(files: readonly string[]): protoLoader.PackageDefinition {
  const out: Record<string, grpc.ServiceDefinition> = {};
  for (const f of files) {
    const names = API_SERVICES[f];
    if (!names) throw new Error(`unknown containerd API file ${f}: regenerate src/containerd/api-descriptor.ts`);
    for (const n of names) out[n] = serviceDefinition(n);
  }
  return out as unknown as protoLoader.PackageDefinition;
}

/** A client of one containerd service: its methods' paths and codecs, and the channel calls go on. */
export interface ServiceClient {
  readonly channel: GrpcChannel;
  readonly methods: grpc.ServiceDefinition;
}

/** A client of containerd service `name` on `channel` (connections are the channel's). */
export function serviceClient(name: ServiceName, channel: GrpcChannel): ServiceClient {
  return { channel, methods: serviceDefinition(SERVICES[name]) };
}
