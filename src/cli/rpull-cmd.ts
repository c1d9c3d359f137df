/**
 * `stargz-ipfs image rpull --ipfs [--snapshotter stargz|overlayfs] [--use-containerd-labels]
 *  [--skip-content-verify] [--platform P] [--address SOCK] [--namespace NS] [--config F]
 *  <CID | ipfs://CID>`
 *
 * upstream's `ctr-remote image rpull --ipfs` (spec §1.7): the image is resolved through
 * IPFS, stored in containerd under the CID's name, and unpacked with the snapshotter;
 * with `stargz` the layers become remote snapshots and are not downloaded. Progress and
 * the summary go to stdout, as upstream's; a failure is one line on stderr.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfigForCommand } from './config-arg.js';
import { errorMessage } from '../errors.js';
import { ipfsClientFrom } from './ipfs-client.js';
import { parsePlatform } from '../ipfs/platform.js';
import type { Platform } from '../ipfs/oci.js';
import { createLogger } from '../log/logger.js';
import { resolveForPull } from '../pull/resolve.js';
import type { PullEvent } from '../pull/rpull.js';

const NAME = 'stargz-ipfs image rpull';
/** containerd/client.ts's default, repeated so that flag parsing does not load gRPC. */
const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';
const USAGE = `usage: ${NAME} --ipfs [--snapshotter stargz|overlayfs] [--use-containerd-labels]
       [--skip-content-verify] [--platform P] [--address SOCK] [--namespace NS] [--config F] <CID | ipfs://CID>
`;

interface Flags {
  readonly ref: string;
  readonly snapshotter: string;
  readonly useContainerdLabels: boolean;
  readonly skipVerify: boolean;
  readonly platform?: Platform;
  readonly address: string;
  readonly namespace: string;
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
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const out = (s: string) => process.stdout.write(`${s}\n`);
  // The IPFS round trips run while the gRPC client (the bulk of start-up) loads.
  const resolved = resolveForPull(ipfs, flags.ref, flags.platform, ac.signal);
  resolved.catch(() => {});
  let containerd: { close(): void } | undefined;
  try {
    const [{ rpull }, { connectContainerd }] = await Promise.all([import('../pull/rpull.js'), import('../containerd/client.js')]);
    // performance.now() counts from process start: what start-up and module loading took.
    const startupMs = performance.now();
    const client = connectContainerd(flags.address, flags.namespace);
    containerd = client;
    const result = await rpull({
      resolved,
      containerd: client,
      ipfs,
      ref: flags.ref,
      snapshotter: flags.snapshotter,
      useContainerdLabels: flags.useContainerdLabels,
      skipVerify: flags.skipVerify,
      platform: flags.platform,
      onEvent: (e) => out(describe(e)),
      signal: ac.signal,
    });
    const count = (o: string) => result.layers.filter((l) => l.outcome === o).length;
    const t = result.timings;
    out(
      `unpacked ${result.name} with ${flags.snapshotter}: ${count('lazy')} lazy, ${count('pulled')} pulled, ${count('present')} already present; ` +
        `${size(result.bytesFetched)} from IPFS in ${(performance.now() / 1000).toFixed(3)} s ` +
        `(start-up ${ms(startupMs)}, resolve ${ms(t.resolveMs)} overlapping start-up, content ${ms(t.contentMs)}, unpack ${ms(t.unpackMs)})`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`${NAME}: ${ac.signal.aborted ? 'interrupted' : errorMessage(err)}\n`);
    return ac.signal.aborted ? 130 : 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    containerd?.close();
    ipfs.close();
  }
}

const ms = (n: number): string => `${Math.round(n)} ms`;

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function describe(e: PullEvent): string {
  switch (e.type) {
    case 'resolved':
      return `resolved ${e.cid}: ${e.layers} layer(s) in ${ms(e.ms)}`;
    case 'fetching':
      // Upstream's progress line: the digest cut at 15 characters.
      return `fetching ${e.digest.slice(0, 15)}... ${e.mediaType}`;
    case 'layer': {
      const what = e.outcome === 'lazy' ? 'remote snapshot (lazy)' : e.outcome === 'pulled' ? `pulled ${size(e.bytes)} and applied` : 'already unpacked';
      return `layer ${e.index}/${e.total} ${e.digest.slice(0, 15)}...: ${what} in ${ms(e.ms)}`;
    }
  }
}

function parseFlags(args: string[]): Flags {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      ipfs: { type: 'boolean', default: false },
      snapshotter: { type: 'string', default: process.env.CONTAINERD_SNAPSHOTTER || 'stargz' },
      'use-containerd-labels': { type: 'boolean', default: false },
      'skip-content-verify': { type: 'boolean', default: false },
      platform: { type: 'string' },
      address: { type: 'string', short: 'a', default: process.env.CONTAINERD_ADDRESS || DEFAULT_CONTAINERD_ADDRESS },
      namespace: { type: 'string', short: 'n', default: process.env.CONTAINERD_NAMESPACE || 'default' },
      config: { type: 'string' },
    },
  });
  if (!v.ipfs) throw new Error('only IPFS images can be pulled: pass --ipfs and a CID');
  if (positionals.length !== 1) throw new Error('expected exactly one CID');
  if (!v.snapshotter) throw new Error('--snapshotter must not be empty');
  let platform: Platform | undefined;
  if (v.platform !== undefined) {
    platform = parsePlatform(v.platform);
    if (!platform) throw new Error(`invalid platform "${v.platform}"`);
  }
  return {
    ref: positionals[0]!,
    snapshotter: v.snapshotter,
    useContainerdLabels: v['use-containerd-labels'],
    skipVerify: v['skip-content-verify'],
    platform,
    address: v.address,
    namespace: v.namespace,
    config: v.config,
  };
}
