/**
 * containerd's own Content, Images and Leases APIs (proto/github.com/containerd/containerd/
 * api/services/…, containerd 1.6's files), loaded at run time like the Snapshots API in
 * src/service/proto.ts, and generic clients for them.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = new URL('../../../proto/', import.meta.url).pathname;
const API = 'github.com/containerd/containerd/api/services';

export const SERVICES = {
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  leases: 'containerd.services.leases.v1.Leases',
} as const;
export type ServiceName = keyof typeof SERVICES;

/**
 * Loads containerd API .proto files (paths below proto/github.com/containerd/containerd/
 * api/services/, e.g. `snapshots/v1/snapshots.proto`) the one way every client and server
 * here reads them.
 */
export function loadApiProtos(files: readonly string[]): protoLoader.PackageDefinition {
  return protoLoader.loadSync(
    files.map((f) => `${API}/${f}`),
    {
      includeDirs: [PROTO_ROOT],
      keepCase: true,
      // int64 sizes, offsets and timestamps: any real blob, disk or date fits a double exactly.
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    },
  );
}

let loaded: protoLoader.PackageDefinition | undefined;

function definition(): protoLoader.PackageDefinition {
  loaded ??= loadApiProtos(['content/v1/content.proto', 'images/v1/images.proto', 'leases/v1/leases.proto']);
  return loaded;
}

export type GenericClient = grpc.Client & Record<string, Function>;

/** A client of one containerd service at `target` (e.g. `unix:/run/containerd/containerd.sock`). */
export function serviceClient(name: ServiceName, target: string, options: grpc.ChannelOptions): GenericClient {
  const service = definition()[SERVICES[name]] as grpc.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(service, SERVICES[name]);
  return new Ctor(target, grpc.credentials.createInsecure(), options) as unknown as GenericClient;
}
