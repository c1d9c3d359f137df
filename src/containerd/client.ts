/**
 * A client of containerd's own API on its socket, scoped to one namespace. Content writes
 * can be scoped to a lease too: `content(lease)`.
 */
import type { Session } from './call.js';
import { ContentStore } from './content.js';
import { ImageStore } from './images.js';
import { LeaseManager } from './leases.js';
import { GrpcChannel } from './grpc-h2.js';
import { serviceClient, type ServiceClient, type ServiceName } from './proto.js';

export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';

export interface Containerd {
  readonly address: string;
  readonly namespace: string;
  /** The content store; writes made through it with `lease` are held by that lease. */
  content(lease?: string): ContentStore;
  readonly images: ImageStore;
  readonly leases: LeaseManager;
  /** A client of any other containerd service (snapshots, diff), on the same connection. */
  service(name: ServiceName): ServiceClient;
  /** Closes the one connection every client above uses. */
  close(): void;
}

/** `address`: a unix socket path or `host:port`. Connects lazily, on the first call. */
export function connectContainerd(address: string, namespace: string): Containerd {
  const channel = new GrpcChannel(address);
  const session: Session = { address, namespace };
  return {
    address,
    namespace,
    content: (lease) => new ContentStore(serviceClient('content', channel), lease === undefined ? session : { ...session, lease }),
    images: new ImageStore(serviceClient('images', channel), session),
    leases: new LeaseManager(serviceClient('leases', channel), session),
    service: (name) => serviceClient(name, channel),
    close: () => channel.close(),
  };
}
