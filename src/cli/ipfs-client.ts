/** The IPFS client a command builds from config; its own module so that a CLI command can use it without loading the chunk cache. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { IpfsClient } from '../ipfs/rpc-client.js';
import { apiEndpoint } from '../ipfs/api-address.js';

export function ipfsClientFrom(config: Config, log: Logger): IpfsClient {
  return new IpfsClient({
    endpoint: apiEndpoint({ apiAddress: config.ipfs_api.api_address || undefined }),
    requestTimeoutMs: config.ipfs_api.request_timeout_sec * 1000,
    fetchTimeoutMs: config.blob.fetching_timeout_sec * 1000,
    log,
  });
}
