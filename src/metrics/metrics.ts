/**
 * Every Prometheus metric of the daemon, in one registry. Upstream's names, types,
 * labels and buckets (spec §5) come first, so dashboards built for
 * containerd-stargz-grpc keep working; ours (prefix `stargz_ipfs_`) follow.
 * The objects are created here and filled in by the code that observes the events
 * (layer fs, chunk cache, IPFS client, snapshotter).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
// Node's process and runtime collectors, like the Go collectors upstream's registry carries.
collectDefaultMetrics({ register: registry });

const powersOfTwo = (max: number): number[] => {
  const out: number[] = [];
  for (let b = 1; b <= max; b *= 2) out.push(b);
  return out;
};

/** Values of the `operation_type` label (upstream fs/metrics/common). */
export const OPERATION = {
  mount: 'mount',
  footerGet: 'stargz_footer_get',
  tocGet: 'stargz_toc_get',
  tocDeserialize: 'stargz_toc_json_deserialize',
  allPrefetchesCompleted: 'all_prefetches_completed',
  backgroundFetchDownload: 'background_fetch_download',
  nodeReaddir: 'node_readdir',
  readOnDemand: 'read_on_demand',
  onDemandReadAccessCount: 'on_demand_read_access_count',
  onDemandRemoteFetchCount: 'on_demand_remote_registry_fetch_count',
  onDemandBytesServed: 'on_demand_bytes_served',
  onDemandBytesFetched: 'on_demand_bytes_fetched',
} as const;

const opLabels = ['operation_type', 'layer'] as const;

export const fsOperationDurationMs = new Histogram({
  name: 'stargz_fs_operation_duration_milliseconds',
  help: 'Latency of snapshotter operations in milliseconds',
  labelNames: opLabels,
  buckets: powersOfTwo(16384),
  registers: [registry],
});

export const fsOperationDurationUs = new Histogram({
  name: 'stargz_fs_operation_duration_microseconds',
  help: 'Latency of snapshotter operations in microseconds',
  labelNames: opLabels,
  buckets: powersOfTwo(1024),
  registers: [registry],
});

export const fsOperationCount = new Counter({
  name: 'stargz_fs_operation_count',
  help: 'The count of filesystem operations',
  labelNames: opLabels,
  registers: [registry],
});

/** A gauge that is only ever added to, as upstream's. */
export const fsBytesServed = new Gauge({
  name: 'stargz_fs_bytes_served',
  help: 'The number of bytes served per layer',
  labelNames: opLabels,
  registers: [registry],
});

/** Per mounted layer, as upstream's counter-typed constant metrics. */
export interface LayerSizes {
  readonly digest: string;
  readonly mountpoint: string;
  /** Bytes of the blob in the cache. */
  readonly fetched: number;
  readonly prefetched: number;
  /** Blob size. */
  readonly size: number;
}

let layerSource: () => Iterable<LayerSizes> = () => [];

/** The layer fs registers where the per-layer sizes come from; read at every scrape. */
export function setLayerSizeSource(source: () => Iterable<LayerSizes>): void {
  layerSource = source;
}

function layerCounter(name: string, help: string, pick: (l: LayerSizes) => number): Counter<'digest' | 'mountpoint'> {
  return new Counter({
    name,
    help,
    labelNames: ['digest', 'mountpoint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const l of layerSource()) this.inc({ digest: l.digest, mountpoint: l.mountpoint }, pick(l));
    },
  });
}

export const layerFetchedSize = layerCounter('stargz_fs_layer_fetched_size_bytes', 'Total fetched size of the layer', (l) => l.fetched);
export const layerPrefetchSize = layerCounter('stargz_fs_layer_prefetch_size_bytes', 'Total prefetched size of the layer', (l) => l.prefetched);
export const layerSize = layerCounter('stargz_fs_layer_size_bytes', 'Total size of the layer', (l) => l.size);

// ---- stargz-ipfs additions

/** The chunk cache's own counters, read at every scrape (the cache keeps them itself). */
export interface CacheCounts {
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly bytes: number;
}

let cacheSource: () => CacheCounts = () => ({ hits: 0, misses: 0, evictions: 0, bytes: 0 });

export function setCacheStatsSource(source: () => CacheCounts): void {
  cacheSource = source;
}

function cacheCounter(name: string, help: string, pick: (c: CacheCounts) => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(pick(cacheSource()));
    },
  });
}

export const cacheHits = cacheCounter('stargz_ipfs_cache_hits_total', 'Chunk reads served from the on-disk chunk cache', (c) => c.hits);
export const cacheMisses = cacheCounter('stargz_ipfs_cache_misses_total', 'Chunk reads that had to fetch the chunk from IPFS', (c) => c.misses);
export const cacheEvictions = cacheCounter('stargz_ipfs_cache_evictions_total', 'Chunks evicted from the on-disk chunk cache to stay within its byte budget', (c) => c.evictions);

export const cacheBytes = new Gauge({
  name: 'stargz_ipfs_cache_size_bytes',
  help: 'Bytes held by the on-disk chunk cache',
  registers: [registry],
  collect() {
    this.set(cacheSource().bytes);
  },
});

/** One observation per IPFS RPC call; `operation` e.g. cat/stat/add, `outcome` ok/error/timeout. */
export const ipfsRequestDuration = new Histogram({
  name: 'stargz_ipfs_request_duration_seconds',
  help: 'Latency of requests to the IPFS node API',
  labelNames: ['operation', 'outcome'],
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

export const ipfsFetchedBytes = new Counter({
  name: 'stargz_ipfs_fetched_bytes_total',
  help: 'Bytes received from the IPFS node',
  registers: [registry],
});

/** Prepares that wanted a remote snapshot and fell back to a normal pull, by reason code. */
export const remoteSnapshotFallbacks = new Counter({
  name: 'stargz_ipfs_remote_snapshot_fallbacks_total',
  help: 'Layers that could not be mounted lazily and were pulled by containerd instead',
  labelNames: ['reason'],
  registers: [registry],
});
