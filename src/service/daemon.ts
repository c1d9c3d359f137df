/**
 * The daemon's running parts, started in order and stopped in reverse: snapshotter
 * (store, restore of remote snapshots), Prometheus endpoint, gRPC server on the socket,
 * then systemd readiness. `src/cli/daemon.ts` parses flags and config and calls this;
 * tests call it in-process.
 */
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { serveMetrics, type MetricsServer } from '../metrics/server.js';
import type { RemoteLayers } from '../snapshotter/remote.js';
import { Snapshotter } from '../snapshotter/snapshotter.js';
import { snapshotsHandlers } from './handlers.js';
import { listenUnix, shutdown } from './listen.js';
import { snapshotsService } from './proto.js';
import { sdNotify } from './sd-notify.js';

export interface DaemonOptions {
  readonly config: Config;
  /** State root (`--root`). */
  readonly root: string;
  /** Unix socket path (`--address`). */
  readonly address: string;
  readonly log: Logger;
  /** The layer filesystem for remote snapshots; leave out when IPFS mode is off. */
  readonly remote?: RemoteLayers;
  /** Prometheus text of another process of this daemon (its layer server), merged in. */
  readonly moreMetrics?: () => Promise<string>;
}

export interface Daemon {
  /**
   * Graceful stop: drain RPCs, unmount remote layers (unless `keepRemoteMounts`: a layer
   * server outside this process goes on serving them), close the store. Idempotent.
   */
  stop(opts?: { keepRemoteMounts?: boolean }): Promise<void>;
}

/** In-flight RPCs get this long to finish at stop. */
const DRAIN_MS = 10_000;

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const { config, log } = opts;
  const snapshotter = await Snapshotter.open({
    root: opts.root,
    log: log.child({ component: 'snapshotter' }),
    remote: opts.remote,
    allowInvalidMountsOnRestart: config.snapshotter.allow_invalid_mounts_on_restart,
  });
  let metrics: MetricsServer | undefined;
  const server = new grpc.Server();
  try {
    if (config.metrics_address !== '' && !config.no_prometheus) {
      metrics = await serveMetrics(config.metrics_address, opts.moreMetrics);
      log.info('serving metrics', { address: config.metrics_address });
    }
    server.addService(snapshotsService, snapshotsHandlers(snapshotter, log.child({ component: 'service' })));
    await listenUnix(server, opts.address);
  } catch (err) {
    server.forceShutdown();
    await metrics?.close();
    await snapshotter.close();
    throw err;
  }
  log.info('serving snapshots', { address: opts.address, remote: opts.remote !== undefined });
  await sdNotify('READY=1', log);

  let stopping: Promise<void> | undefined;
  return {
    stop: (stopOpts = {}) =>
      (stopping ??= (async () => {
        await sdNotify('STOPPING=1', log);
        await shutdown(server, DRAIN_MS);
        await metrics?.close();
        await snapshotter.close(stopOpts);
      })()),
  };
}
