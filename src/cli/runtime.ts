/**
 * The shared parts a daemon or a CLI command builds from config once: the IPFS client,
 * the chunk cache and the background scheduler. Wiring only; no logic.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import { ipfsClientFrom } from './ipfs-client.js';
import { ChunkCache } from '../cache/chunk-cache.js';
import { BackgroundScheduler } from '../layer/background-scheduler.js';

/** Upstream starts background fetch only after foreground work has been quiet this long. */
const BACKGROUND_QUIET_MS = 5000;
/** Unbroken foreground activity after which one background fetch runs alongside it. */
const BACKGROUND_STARVE_MS = 5000;

export interface Runtime {
  readonly ipfs: IpfsClient;
  readonly cache: ChunkCache;
  readonly scheduler: BackgroundScheduler;
  close(): Promise<void>;
}

export async function openRuntime(config: Config, root: string, log: Logger): Promise<Runtime> {
  const cache = await ChunkCache.open({
    dir: config.cache.dir || join(root, 'cache'),
    maxBytes: config.cache.max_size_bytes || undefined,
    log,
  });
  const scheduler = new BackgroundScheduler(config.max_concurrency, BACKGROUND_QUIET_MS, BACKGROUND_STARVE_MS);
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
