/**
 * `stargz-ipfs image ipfs-push [--estargz=true|false] [--platform P]... [--all-platforms]
 *  [--prioritized-files FILE] [--address SOCK] [--namespace NS] [--quiet] [--config F] <ref>`
 *
 * upstream's `ctr-remote image ipfs-push` (spec §1.8). Progress goes to stderr; the CID of
 * the image's root descriptor is the last (only) line of stdout. Any failure is one line
 * on stderr and a non-zero exit, and no CID is printed.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfigForCommand } from './config-arg.js';
import { connectContainerd, DEFAULT_CONTAINERD_ADDRESS } from '../containerd/client.js';
import { errorMessage, SgError } from '../errors.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import { createLogger } from '../log/logger.js';
import { platformFilter, type PlatformFilter } from '../push/platforms.js';
import { pushImage } from '../push/push.js';
import { progressPrinter } from './progress.js';
import { ipfsClientFrom } from './ipfs-client.js';

const NAME = 'stargz-ipfs image ipfs-push';
const USAGE = `usage: ${NAME} [--estargz=true|false] [--platform P]... [--all-platforms]
       [--prioritized-files FILE] [--address SOCK] [--namespace NS] [--quiet] [--config F] <image ref>
`;
/** CIDv1 of the empty identity block: answered by any node from the CID alone, a cheap liveness check. */
const EMPTY_CID = 'bafkqaaa';

interface Flags {
  readonly ref: string;
  readonly estargz: boolean;
  readonly filter: PlatformFilter;
  readonly prioritizedFiles?: string;
  readonly address: string;
  readonly namespace: string;
  readonly quiet: boolean;
  readonly config?: string;
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let flags: Flags;
  try {
    flags = parseFlags(args);
  } catch (err) {
    process.stderr.write(`${NAME}: ${errorMessage(err)}\n${USAGE}`);
    return 2;
  }
  const loaded = await loadConfigForCommand(NAME, flags.config);
  if (!loaded) return 2;
  const { config } = loaded;
  const ipfs = ipfsClientFrom(config, createLogger('warn'));
  const containerd = connectContainerd(flags.address, flags.namespace);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const prioritizedFiles = flags.prioritizedFiles === undefined ? [] : await readList(flags.prioritizedFiles);
    await checkIpfs(ipfs, ac.signal);
    const result = await pushImage({
      containerd,
      ipfs,
      ref: flags.ref,
      estargz: flags.estargz,
      filter: flags.filter,
      prioritizedFiles,
      onEvent: flags.quiet ? undefined : progressPrinter(process.stderr),
      signal: ac.signal,
    });
    if (result.missedPrioritizedFiles.length > 0) {
      process.stderr.write(`${NAME}: warning: prioritized files in no layer: ${result.missedPrioritizedFiles.join(', ')}\n`);
    }
    process.stdout.write(`${result.cid}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${NAME}: ${ac.signal.aborted ? 'interrupted' : errorMessage(err)}\n`);
    return ac.signal.aborted ? 130 : 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    containerd.close();
    ipfs.close();
  }
}

function parseFlags(args: string[]): Flags {
  // A bare `--estargz` means true, as with upstream's boolean flag.
  const normalized = args.map((a) => (a === '--estargz' ? '--estargz=true' : a));
  const { values: v, positionals } = parseArgs({
    args: normalized,
    allowPositionals: true,
    strict: true,
    options: {
      estargz: { type: 'string', default: 'true' },
      platform: { type: 'string', multiple: true, default: [] },
      'all-platforms': { type: 'boolean', default: false },
      'prioritized-files': { type: 'string' },
      address: { type: 'string', default: process.env.CONTAINERD_ADDRESS || DEFAULT_CONTAINERD_ADDRESS },
      namespace: { type: 'string', default: process.env.CONTAINERD_NAMESPACE || 'default' },
      quiet: { type: 'boolean', short: 'q', default: false },
      config: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error('expected exactly one image reference');
  if (v.estargz !== 'true' && v.estargz !== 'false') throw new Error('--estargz takes true or false');
  // As upstream's string-slice flag: repeated, or comma-separated.
  const platforms = v.platform.flatMap((p) => p.split(','));
  if (v['all-platforms'] && platforms.length > 0) throw new Error('--all-platforms and --platform exclude each other');
  if (v.estargz === 'false' && v['prioritized-files'] !== undefined) throw new Error('--prioritized-files needs eStargz conversion (--estargz=true)');
  return {
    ref: positionals[0]!,
    estargz: v.estargz === 'true',
    filter: platformFilter({ all: v['all-platforms'], platforms }),
    prioritizedFiles: v['prioritized-files'],
    address: v.address,
    namespace: v.namespace,
    quiet: v.quiet,
    config: v.config,
  };
}

/** One path per line; blank lines ignored. */
async function readList(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new SgError('INVALID_ARGUMENT', 'cannot read the prioritized files list', { path }, { cause: err });
  });
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** Fails in a second when the IPFS node is down, before any conversion work. */
async function checkIpfs(ipfs: IpfsClient, signal: AbortSignal): Promise<void> {
  await ipfs.stat(EMPTY_CID, signal).catch((err: unknown) => {
    throw new SgError('UNAVAILABLE', `IPFS node is not reachable: ${errorMessage(err)}`, {}, { cause: err });
  });
}
