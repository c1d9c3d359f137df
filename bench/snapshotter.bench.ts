/**
 * Snapshotter benchmarks:
 * - prepare_commit_50: 50 Prepare/Commit pairs (a 50-layer chain, as an unpack makes)
 *   through containerd's own Snapshots API, once with our daemon behind the "stargz"
 *   proxy plugin and once with containerd's built-in overlayfs snapshotter, alternating
 *   for several rounds in the same run; median of each, ratio ours / overlayfs.
 * - list_1000: List of 1,000 snapshots with a label filter, straight on our socket.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { emit, median } from './report.js';
import { makeScratch, destroyScratch, reapStale } from '../test/harness/scratch.js';
import { startProc, waitFor, type Proc } from '../test/harness/proc.js';
import { startContainerd, type Containerd } from '../test/harness/containerd.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';

const daemonJs = new URL('../src/cli/daemon.js', import.meta.url).pathname;
const ROUNDS = 5;
const PAIRS = 50;

export async function run(): Promise<void> {
  reapStale();
  const scratch = makeScratch();
  let daemon: Proc | undefined;
  let ctd: Containerd | undefined;
  const clients: SnapshotsClient[] = [];
  try {
    const socket = join(scratch, 'sn', 's.sock');
    const config = join(scratch, 'config.toml');
    writeFileSync(config, '');
    daemon = startProc(process.execPath, [daemonJs, '--root', join(scratch, 'root'), '--address', socket, '--config', config, '--log-level', 'info'], join(scratch, 'daemon.log'));
    await waitFor('daemon started', 15_000, () => {
      const log = readFileSync(daemon!.logPath, 'utf8');
      if (daemon!.child.exitCode !== null) throw new Error(log);
      return log.includes('"msg":"daemon started"') || undefined;
    });
    ctd = await startContainerd(scratch, { stargzSocket: socket });

    const viaContainerd = (snapshotter: string) => {
      const c = connectSnapshots(ctd!.address, { namespace: ctd!.namespace, snapshotter });
      clients.push(c);
      return c;
    };
    const ours = viaContainerd('stargz');
    const overlay = viaContainerd('overlayfs');
    const times: Record<'ours' | 'overlay', number[]> = { ours: [], overlay: [] };
    for (let round = 0; round < ROUNDS; round++) {
      times.ours.push(await prepareCommitChain(ours, `r${round}`));
      times.overlay.push(await prepareCommitChain(overlay, `r${round}`));
    }
    const value = median(times.ours);
    const baseline = median(times.overlay);
    emit({ bench: 'snapshotter.prepare_commit_50', value, unit: 'ms', baseline, target: 'ratio <= 1.5' });

    const direct = connectSnapshots(socket);
    clients.push(direct);
    emit({ bench: 'snapshotter.list_1000', value: await listWithFilter(direct), unit: 'ms', baseline: null, target: '<= 50 ms' });
  } finally {
    for (const c of clients) c.close();
    await ctd?.stop();
    await daemon?.stop('SIGTERM', 10_000);
    destroyScratch(scratch);
  }
}

/** ms for PAIRS Prepare/Commit pairs in a chain; the chain is removed afterwards, untimed. */
async function prepareCommitChain(sn: SnapshotsClient, prefix: string): Promise<number> {
  const labels = { 'containerd.io/gc.root': 'bench' };
  let parent = '';
  const t0 = performance.now();
  for (let i = 0; i < PAIRS; i++) {
    const key = `${prefix}-layer-${i}-active`;
    await sn.prepare(key, parent, labels);
    parent = `${prefix}-layer-${i}`;
    await sn.commit(parent, key, labels);
  }
  const ms = performance.now() - t0;
  for (let i = PAIRS - 1; i >= 0; i--) await sn.remove(`${prefix}-layer-${i}`);
  return ms;
}

/** Median ms of a List of 1,000 snapshots filtered to the 500 carrying label `l=1`. */
async function listWithFilter(sn: SnapshotsClient): Promise<number> {
  for (let i = 0; i < 1000; i++) await sn.view(`list-${i}`, '', { l: String(i % 2), 'containerd.io/gc.root': 'bench' });
  const samples: number[] = [];
  for (let i = 0; i < 11; i++) {
    const t0 = performance.now();
    const { infos } = await sn.list(['labels.l==1']);
    samples.push(performance.now() - t0);
    if (infos.length !== 500) throw new Error(`list returned ${infos.length} infos, expected 500`);
  }
  return median(samples);
}
