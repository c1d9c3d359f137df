/**
 * IPFS mode for the daemon: the runtime (IPFS client, chunk cache, scheduler), the layer
 * mounts that serve remote snapshots, and their metrics. Wiring only.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { ipfsSourceFromLabels } from '../ipfs/label-source.js';
import { meteredSource } from '../source/metered-source.js';
import { LayerMounts } from '../layer/remote-layers.js';
import { needsUserXattr } from '../snapshotter/mounts.js';
import { ipfsFetchedBytes, ipfsRequestDuration, setCacheStatsSource, setLayerSizeSource } from '../metrics/metrics.js';
import { openRuntime } from './runtime.js';

export interface IpfsLayers {
  readonly layers: LayerMounts;
  /** Stops background work and closes the cache (which saves its index for a fast reopen). */
  close(): Promise<void>;
}

export async function startIpfsLayers(config: Config, root: string, log: Logger): Promise<IpfsLayers> {
  const rt = await openRuntime(config, root, log.child({ component: 'cache' }));
  const observe = (seconds: number, bytes: number, outcome: 'ok' | 'error') => {
    ipfsRequestDuration.observe({ operation: 'cat', outcome }, seconds);
    ipfsFetchedBytes.inc(bytes);
  };
  const layers = new LayerMounts({
    config,
    deps: { cache: rt.cache, scheduler: rt.scheduler, log: log.child({ component: 'layer' }) },
    resolveSource: async (labels, signal) => meteredSource(await ipfsSourceFromLabels(labels, rt.ipfs, signal), observe),
    opaqueXattr: needsUserXattr() ? 'user' : 'trusted',
    log: log.child({ component: 'layer' }),
  });
  setLayerSizeSource(() => layers.sizes());
  setCacheStatsSource(() => rt.cache.stats());
  return { layers, close: () => rt.close() };
}
