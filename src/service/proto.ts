/**
 * containerd's Snapshots API (proto/github.com/containerd/containerd/api/…), loaded at
 * run time with @grpc/proto-loader: the service definition for our server, and a client
 * constructor for tests, benchmarks and tools that speak the same API.
 */
import * as grpc from '@grpc/grpc-js';
import { loadApiProtos } from '../containerd/proto.js';

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';

const definition = loadApiProtos(['snapshots/v1/snapshots.proto']);

export const snapshotsService = definition[SNAPSHOTS_SERVICE] as grpc.ServiceDefinition;

/** A generic client of the Snapshots service at `target` (e.g. `unix:/run/x.sock`). */
export function snapshotsClient(target: string, options: grpc.ChannelOptions = {}): grpc.Client & Record<string, Function> {
  const Ctor = grpc.makeGenericClientConstructor(snapshotsService, 'Snapshots');
  return new Ctor(target, grpc.credentials.createInsecure(), options) as unknown as grpc.Client & Record<string, Function>;
}
