/**
 * The ten RPCs of containerd.services.snapshots.v1.Snapshots, routed to the snapshotter.
 * Each handler only decodes, calls and encodes; every failure goes through the status
 * table in status.ts. The request's `snapshotter` field is ignored: one snapshotter per
 * socket, as upstream.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log/logger.js';
import type { Snapshotter } from '../snapshotter/snapshotter.js';
import { SgError } from '../errors.js';
import { toWireInfo, toWireMounts, type CommitRequest, type CreateRequest, type KeyRequest, type ListRequest, type UpdateRequest } from './messages.js';
import { isRoutine, toServiceError } from './status.js';

/** Infos per List response message, as containerd's snapshotservice sends them. */
const LIST_BATCH = 100;

export function snapshotsHandlers(sn: Snapshotter, log: Logger): grpc.UntypedServiceImplementation {
  const unary =
    <Req extends object>(method: string, fn: (req: Req) => unknown): grpc.handleUnaryCall<Req, unknown> =>
    (call, callback) => {
      const started = performance.now();
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (res) => {
            if (log.enabled('debug')) log.debug('rpc', { method, ...keyOf(call.request), ms: elapsed(started) });
            callback(null, res);
          },
          (err: unknown) => {
            logFailure(log, method, call.request, err, started);
            callback(toServiceError(err));
          },
        );
    };

  return {
    Prepare: unary('Prepare', async (r: CreateRequest) => toWireMounts(await sn.prepare(r.key, r.parent, r.labels))),
    View: unary('View', async (r: CreateRequest) => toWireMounts(await sn.view(r.key, r.parent, r.labels))),
    Mounts: unary('Mounts', async (r: KeyRequest) => toWireMounts(await sn.mounts(r.key))),
    Commit: unary('Commit', async (r: CommitRequest) => {
      await sn.commit(r.name, r.key, r.labels, r.parent);
      return {};
    }),
    Remove: unary('Remove', async (r: KeyRequest) => {
      await sn.remove(r.key);
      return {};
    }),
    Stat: unary('Stat', (r: KeyRequest) => ({ info: toWireInfo(sn.stat(r.key)) })),
    Update: unary('Update', (r: UpdateRequest) => {
      if (!r.info) throw new SgError('INVALID_ARGUMENT', 'update without info');
      return { info: toWireInfo(sn.update({ name: r.info.name, labels: r.info.labels }, r.update_mask?.paths ?? [])) };
    }),
    List: (call: grpc.ServerWritableStream<ListRequest, unknown>) => {
      const started = performance.now();
      try {
        const infos = sn.list(call.request.filters);
        for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH).map(toWireInfo) });
        if (log.enabled('debug')) log.debug('rpc', { method: 'List', filters: call.request.filters, count: infos.length, ms: elapsed(started) });
        call.end();
      } catch (err) {
        logFailure(log, 'List', call.request, err, started);
        call.emit('error', toServiceError(err));
      }
    },
    Usage: unary('Usage', async (r: KeyRequest) => sn.usage(r.key)),
    Cleanup: unary('Cleanup', async () => {
      await sn.cleanup();
      return {};
    }),
  };
}

const elapsed = (since: number): number => Math.round((performance.now() - since) * 1000) / 1000;

function keyOf(req: object): Record<string, unknown> {
  const r = req as Partial<CommitRequest & ListRequest>;
  return { key: r.key, ...(r.name ? { name: r.name } : {}), ...(r.parent ? { parent: r.parent } : {}), ...(r.filters ? { filters: r.filters } : {}) };
}

function logFailure(log: Logger, method: string, req: object, err: unknown, started: number): void {
  const fields = { method, ...keyOf(req), ms: elapsed(started), error: err };
  if (isRoutine(err)) log.debug('rpc failed', fields);
  else log.warn('rpc failed', fields);
}
