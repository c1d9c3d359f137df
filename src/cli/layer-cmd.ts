/**
 * `stargz-ipfs layer mount (--cid CID | --blob FILE) [--toc-digest D] [--digest D]
 *  [--config F] [--root DIR] [--log-level L] <dir>`: mounts one eStargz layer read-only until
 * SIGINT/SIGTERM, then unmounts and exits 0. Prints `mounted <dir>` once the mount answers.
 */
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigForCommand } from './config-arg.js';
import { createLogger, isLevel } from '../log/logger.js';
import { errorMessage } from '../errors.js';
import { FileBlobSource } from '../source/file-source.js';
import { IpfsBlobSource } from '../source/ipfs-source.js';
import type { BlobSource } from '../source/blob-source.js';
import { parseIpfsRef } from '../ipfs/cid.js';
import { openLayer } from '../layer/open-layer.js';
import { mountLayer } from '../fuse/mount.js';
import { openRuntime } from './runtime.js';
import { DEFAULT_ROOT } from './defaults.js';

const USAGE = 'usage: stargz-ipfs layer mount (--cid CID | --blob FILE) [--toc-digest D] [--digest D] [--config F] [--root DIR] [--log-level L] <dir>\n';

export async function run(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd !== 'mount') {
    process.stderr.write(USAGE);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        cid: { type: 'string' },
        blob: { type: 'string' },
        'toc-digest': { type: 'string' },
        digest: { type: 'string' },
        config: { type: 'string' },
        root: { type: 'string', default: DEFAULT_ROOT },
        'log-level': { type: 'string', default: 'warn' },
      },
    });
  } catch (err) {
    process.stderr.write(`stargz-ipfs layer mount: ${errorMessage(err)}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (positionals.length !== 1 || (v.cid === undefined) === (v.blob === undefined) || !isLevel(v['log-level'])) {
    process.stderr.write(USAGE);
    return 2;
  }
  const dir = resolve(positionals[0]!);
  const loaded = await loadConfigForCommand('stargz-ipfs layer mount', v.config);
  if (!loaded) return 2;
  const { config } = loaded;
  const log = createLogger(v['log-level']);
  const rt = await openRuntime(config, v.root, log);
  try {
    let source: BlobSource;
    let digest = v.digest;
    if (v.cid !== undefined) {
      source = new IpfsBlobSource(parseIpfsRef(v.cid), rt.ipfs);
      digest ??= parseIpfsRef(v.cid);
    } else {
      source = new FileBlobSource(resolve(v.blob!));
      digest ??= await fileDigest(resolve(v.blob!));
    }
    const opened = await openLayer(
      source,
      {
        digest,
        tocDigest: v['toc-digest'],
        prefetchSize: config.prefetch_size,
        noPrefetch: config.noprefetch,
        noBackgroundFetch: config.no_background_fetch,
        fetchAlignBytes: config.blob.chunk_size,
        opaqueXattr: 'trusted',
      },
      { cache: rt.cache, scheduler: rt.scheduler, log },
    );
    const mounted = await mountLayer(opened.layer, dir, { attrTimeoutSec: config.fuse.attr_timeout, entryTimeoutSec: config.fuse.entry_timeout, passthrough: config.fuse.passthrough, log });
    process.stdout.write(`mounted ${dir}\n`);
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    opened.close();
    await mounted.unmount();
    return 0;
  } catch (err) {
    process.stderr.write(`stargz-ipfs layer mount: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    await rt.close();
  }
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}
