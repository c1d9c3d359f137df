/**
 * A promise-based client of the Snapshots API, for tests, benchmarks and tools. It talks
 * to our daemon's socket, or to containerd's own API: there pass `namespace` (sent as
 * gRPC metadata `containerd-namespace`) and `snapshotter` (e.g. "overlayfs" or "stargz").
 */
import * as grpc from '@grpc/grpc-js';
import type { Labels } from '../snapshotter/types.js';
import type { WireInfo, WireMount } from './messages.js';
import { snapshotsClient } from './proto.js';

export interface SnapshotsClient {
  prepare(key: string, parent?: string, labels?: Labels): Promise<WireMount[]>;
  view(key: string, parent?: string, labels?: Labels): Promise<WireMount[]>;
  mounts(key: string): Promise<WireMount[]>;
  commit(name: string, key: string, labels?: Labels, parent?: string): Promise<void>;
  remove(key: string): Promise<void>;
  stat(key: string): Promise<WireInfo>;
  update(info: { name: string; labels: Labels }, paths?: string[]): Promise<WireInfo>;
  /** Every Info of the stream, and how many messages carried them. */
  list(filters?: string[]): Promise<{ infos: WireInfo[]; messages: number }>;
  usage(key: string): Promise<{ size: number; inodes: number }>;
  cleanup(): Promise<void>;
  close(): void;
}

export interface ClientOptions {
  namespace?: string;
  snapshotter?: string;
}

type Callback = (err: grpc.ServiceError | null, res: Record<string, unknown>) => void;
type UnaryFn = (req: object, md: grpc.Metadata, cb: Callback) => void;

/** `address`: a unix socket path or any gRPC target (`unix:…`, `host:port`). */
export function connectSnapshots(address: string, opts: ClientOptions = {}): SnapshotsClient {
  const target = address.startsWith('/') ? `unix:${address}` : address;
  const client = snapshotsClient(target);
  const snapshotter = opts.snapshotter ?? '';
  const md = () => {
    const m = new grpc.Metadata();
    if (opts.namespace) m.set('containerd-namespace', opts.namespace);
    return m;
  };
  const call = <T>(method: string, req: object, pick: (res: Record<string, unknown>) => T): Promise<T> =>
    new Promise((resolve, reject) => {
      (client[method] as UnaryFn).call(client, { snapshotter, ...req }, md(), (err, res) => (err ? reject(err) : resolve(pick(res))));
    });
  const mounts = (res: Record<string, unknown>) => res.mounts as WireMount[];
  const none = () => undefined;
  return {
    prepare: (key, parent = '', labels = {}) => call('Prepare', { key, parent, labels }, mounts),
    view: (key, parent = '', labels = {}) => call('View', { key, parent, labels }, mounts),
    mounts: (key) => call('Mounts', { key }, mounts),
    commit: (name, key, labels = {}, parent = '') => call('Commit', { name, key, labels, parent }, none),
    remove: (key) => call('Remove', { key }, none),
    stat: (key) => call('Stat', { key }, (r) => r.info as WireInfo),
    update: (info, paths = []) => call('Update', { info, update_mask: { paths } }, (r) => r.info as WireInfo),
    usage: (key) => call('Usage', { key }, (r) => r as { size: number; inodes: number }),
    cleanup: () => call('Cleanup', {}, none),
    list: (filters = []) =>
      new Promise((resolve, reject) => {
        const infos: WireInfo[] = [];
        let messages = 0;
        const stream = (client.List as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<{ info: WireInfo[] }>).call(client, { snapshotter, filters }, md());
        stream.on('data', (m: { info: WireInfo[] }) => {
          messages++;
          infos.push(...m.info);
        });
        stream.on('error', reject);
        stream.on('end', () => resolve({ infos, messages }));
      }),
    close: () => client.close(),
  };
}
