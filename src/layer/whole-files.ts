/**
 * Local files holding exactly one layer file's bytes, for FUSE passthrough: the kernel
 * then reads an open file straight from disk, with no READ to this process. A one-chunk
 * file is its chunk's cache entry; a larger one is assembled from its cached chunks into
 * a cache entry named by the file's digest, once every chunk is cached (never fetching for
 * it: passthrough must not make a lazy layer less lazy). The assembly is checked against
 * the TOC's file digest, so a layer cannot plant wrong bytes under another file's name.
 */
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { LayerNode } from '../estargz/index.js';
import type { Logger } from '../log/logger.js';

const SHA256 = /^sha256:[0-9a-f]{64}$/;

export class WholeFiles {
  private readonly assembling = new Set<string>();

  constructor(
    private readonly cache: ChunkCache,
    private readonly log: Logger,
  ) {}

  /** A verified local file with the node's bytes, if there is one now (else starts making one when it can). */
  async pathOf(node: LayerNode): Promise<string | undefined> {
    const key = keyOf(node);
    if (!key) return undefined;
    const path = await this.cache.verifiedPath(key);
    if (!path) this.assembleWhenCached(node);
    return path;
  }

  /**
   * Assembles a file of several chunks in the background once all of them are cached
   * (after the cache writes in flight, such as those of a read that just ended).
   */
  assembleWhenCached(node: LayerNode): void {
    const key = keyOf(node);
    if (!key || node.chunks.length < 2 || this.assembling.has(key) || this.cache.has(key)) return;
    this.assembling.add(key);
    void this.assemble(node, key).finally(() => this.assembling.delete(key));
  }

  private async assemble(node: LayerNode, key: string): Promise<void> {
    await this.cache.writesDone();
    if (!node.chunks.every((c) => this.cache.has(c.digest))) return;
    const started = Date.now();
    if (await this.cache.assemble(key, node.chunks.map((c) => c.digest))) {
      this.log.debug('whole file assembled', { file: node.name, digest: key, size: node.size, ms: Date.now() - started });
    }
  }
}

/** The cache entry that holds the whole file: its one chunk, or its TOC digest. */
function keyOf(node: LayerNode): string | undefined {
  if (node.type !== 'reg' || node.size === 0 || node.chunks.length === 0) return undefined;
  if (node.chunks.length === 1) return node.chunks[0]!.chunkSize === node.size ? node.chunks[0]!.digest : undefined;
  return SHA256.test(node.digest) ? node.digest : undefined;
}
