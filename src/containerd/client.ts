/**
 * A client of containerd's own API on its socket, scoped to one namespace. Content writes
 * can be scoped to a lease too: `content(lease)`.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Session } from './call.js';
import { ContentStore } from './content.js';
import { ImageStore } from './images.js';
import { LeaseManager } from './leases.js';
import { serviceClient, type GenericClient, type ServiceName } from './proto.js';

export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';

export interface Containerd {
  readonly address: string;
  readonly namespace: string;
  /** The content store; writes made through it with `lease` are held by that lease. */
  content(lease?: string): ContentStore;
  readonly images: ImageStore;
  readonly leases: LeaseManager;
  close(): void;
}

/** A containerd message can carry a whole small blob; raise grpc-js's 4 MiB receive limit a little. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 << 20 };

/** `address`: a unix socket path or any gRPC target. Connects lazily, on the first call. */
export function connectContainerd(address: string, namespace: string): Containerd {
  const target = address.startsWith('/') ? `unix:${address}` : address;
  const clients = new Map<ServiceName, GenericClient>();
  const client = (name: ServiceName): GenericClient => {
    let c = clients.get(name);
    if (!c) clients.set(name, (c = serviceClient(name, target, CHANNEL_OPTIONS)));
    return c;
  };
  const session: Session = { address, namespace };
  return {
    address,
    namespace,
    content: (lease) => new ContentStore(client('content'), lease === undefined ? session : { ...session, lease }),
    images: new ImageStore(client('images'), session),
    leases: new LeaseManager(client('leases'), session),
    close: () => {
      for (const c of clients.values()) c.close();
    },
  };
}
