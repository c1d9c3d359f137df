/**
 * The shared parts a daemon or a CLI command builds from config once: the IPFS client,
 * the chunk cache and the background scheduler. Wiring only; no logic.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { IpfsClient } from '../ipfs/rpc-client.js';
import { apiEndpoint } from '../ipfs/api-address.js';
import { ChunkCache } from '../cache/chunk-cache.js';
import { BackgroundScheduler } from '../layer/background-scheduler.js';

/** Upstream starts background fetch only after foreground work has been quiet this long. */
const BACKGROUND_QUIET_MS = 5000;

export interface Runtime {
  readonly ipfs: IpfsClient;
  readonly cache: ChunkCache;
  readonly scheduler: BackgroundScheduler;
  close(): Promise<void>;
}

export function ipfsClientFrom(config: Config, log: Logger): IpfsClient {
  return new IpfsClient({
    endpoint: apiEndpoint({ apiAddress: config.ipfs_api.api_address || undefined }),
    requestTimeoutMs: config.ipfs_api.request_timeout_sec * 1000,
    fetchTimeoutMs: config.blob.fetching_timeout_sec * 1000,
    log,
  });
}

export async function openRuntime(config: Config, root: string, log: Logger): Promise<Runtime> {
  const cache = await ChunkCache.open({
    dir: config.cache.dir || join(root, 'cache'),
    maxBytes: config.cache.max_size_bytes || undefined,
    log,
  });
  const scheduler = new BackgroundScheduler(config.max_concurrency, BACKGROUND_QUIET_MS);
  return {
    ipfs: ipfsClientFrom(config, log),
    cache,
    scheduler,
    async close() {
      scheduler.close();
      await cache.close();
    },
  };
}
