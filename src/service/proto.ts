/**
 * containerd's Snapshots API (proto/github.com/containerd/containerd/api/…), from the
 * pre-parsed descriptors of src/containerd/proto.ts: the service definition for our server,
 * and a client constructor for tests, benchmarks and tools that speak the same API.
 */
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../containerd/proto.js';

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';

export const snapshotsService = serviceDefinition(SNAPSHOTS_SERVICE);

/** A generic client of the Snapshots service at `target` (e.g. `unix:/run/x.sock`). */
export function snapshotsClient(target: string, options: grpc.ChannelOptions = {}): grpc.Client & Record<string, Function> {
  const Ctor = grpc.makeGenericClientConstructor(snapshotsService, 'Snapshots');
  return new Ctor(target, grpc.credentials.createInsecure(), options) as unknown as grpc.Client & Record<string, Function>;
}
