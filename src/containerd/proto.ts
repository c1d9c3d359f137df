/**
 * containerd's own Content, Images, Leases, Diff and Snapshots APIs (proto/github.com/
 * containerd/containerd/api/services/…, containerd 1.6's files), and generic clients for them.
 *
 * Start-up matters here (every `rpull` pays it): the .proto files are not parsed at run time
 * but pre-parsed into api-descriptor.ts (gen-api-descriptor.ts; a test checks that it matches
 * the files), messages are encoded and decoded straight from it (proto-codec.ts), and a
 * service's definition is made only when asked for. Messages convert exactly as with
 * @grpc/proto-loader's options keepCase, longs: Number, enums: String, defaults.
 */
import type * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { API_SERVICES } from './api-descriptor.js';
import type { GrpcChannel } from './grpc-h2.js';
import { lookup, resolveMessage, type MessageType } from './proto-codec.js';

export const SERVICES = {
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  leases: 'containerd.services.leases.v1.Leases',
  snapshots: 'containerd.services.snapshots.v1.Snapshots',
  diff: 'containerd.services.diff.v1.Diff',
} as const;
export type ServiceName = keyof typeof SERVICES;

const services = new Map<string, grpc.ServiceDefinition>();

/** The gRPC definition of service `name` (e.g. `containerd.services.content.v1.Content`), made on first use. */
export function serviceDefinition(name: string): grpc.ServiceDefinition {
  let def = services.get(name);
  if (!def) {
    const service = lookup(name);
    if (!service?.methods) throw new Error(`no service ${name} in the containerd API descriptor`);
    const methods: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const [method, m] of Object.entries(service.methods)) {
      const req = resolveMessage(m.requestType, name);
      const res = resolveMessage(m.responseType, name);
      methods[method] = {
        path: `/${name}/${method}`,
        requestStream: !!m.requestStream,
        responseStream: !!m.responseStream,
        requestSerialize: serializer(req),
        requestDeserialize: deserializer(req),
        responseSerialize: serializer(res),
        responseDeserialize: deserializer(res),
        // proto-loader's camelCase of the method name (all of containerd's are plain PascalCase).
        originalName: method.charAt(0).toLowerCase() + method.slice(1),
      };
    }
    services.set(name, (def = methods as grpc.ServiceDefinition));
  }
  return def;
}

function serializer(type: MessageType): (arg: object) => Buffer {
  return (arg) => {
    if (Array.isArray(arg)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(arg as Record<string, unknown>);
  };
}

function deserializer(type: MessageType): (buf: Buffer) => object {
  return (buf) => type.decode(buf);
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
