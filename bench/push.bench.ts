/**
 * push.300mib: `stargz-ipfs image ipfs-push` of a 300 MiB image (busybox + 3 layers of
 * 100 MiB semi-random files) from a real containerd to a real Kubo node: seconds, against
 * `ipfs add` of the same uncompressed layer tars in the same run (the floor: no reading
 * from containerd, no gzip, no eStargz). Peak RSS of the push process (GNU time's %M) for
 * a 100 MiB and the 300 MiB image shows memory does not grow with image size.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { emit } from './report.js';
import { makeScratch, destroyScratch, reapStale } from '../test/harness/scratch.js';
import { startKubo } from '../test/harness/kubo.js';
import { startContainerd } from '../test/harness/containerd.js';
import { buildImage, type FileSpec } from '../test/harness/push-fixtures.js';

const execFileAsync = promisify(execFile);
const mainJs = new URL('../src/cli/main.js', import.meta.url).pathname;
const MiB = 1024 * 1024;
/** Upstream's `ctr-remote image ipfs-push` of its 3-layer ~200 MiB bench image (shared/README.md). */
const UPSTREAM_SECONDS = 17.5;

/** About 100 MiB: 25 semi-random files of up to 4 MiB and 150 small text files of 1 KiB. */
function layer(seed: number): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = {};
  for (let i = 0; i < 25; i++) files[`data/f${i}.bin`] = { size: 4 * MiB - (i === 24 ? 150 * 1024 : 0), seed: seed * 100 + i };
  for (let i = 0; i < 150; i++) files[`small/s${i}.txt`] = `${'x'.repeat(i * 7)}\n${seed}-${i}\n`.repeat(10).slice(0, 1024);
  return files;
}

export async function run(): Promise<void> {
  reapStale();
  const scratch = makeScratch();
  const kubo = await startKubo(scratch);
  const ctd = await startContainerd(scratch);
  try {
    const config = join(scratch, 'config.toml');
    writeFileSync(config, '');
    const images = [
      { label: '100mib', layers: [layer(1)] },
      { label: '300mib', layers: [layer(2), layer(3), layer(4)] },
    ];
    const results: Record<string, { seconds: number; rssMiB: number; baseline: number }> = {};
    for (const img of images) {
      const dir = join(scratch, img.label);
      mkdirSync(dir);
      const built = await buildImage(dir, { name: `example.com/bench/push-${img.label}:1`, layers: img.layers, gzipLevel: 1, keepTars: true });
      await ctd.ctr(['images', 'import', built.tarPath], { timeoutMs: 600_000 });

      let t = performance.now();
      await execFileAsync(kubo.bin, ['add', '-Q', '--cid-version=1', '--raw-leaves', '--pin', ...built.layerTars], { env: { ...process.env, IPFS_PATH: kubo.ipfsPath } });
      const baseline = (performance.now() - t) / 1000;

      const rssFile = join(dir, 'rss');
      t = performance.now();
      const argv = ['-f', '%M', '-o', rssFile, process.execPath, mainJs, 'image', 'ipfs-push', '--quiet'];
      argv.push('--address', ctd.address, '--namespace', ctd.namespace, '--config', config, built.name);
      const { stdout } = await execFileAsync('/usr/bin/time', argv, { env: { ...process.env, IPFS_PATH: kubo.ipfsPath }, timeout: 900_000 });
      const seconds = (performance.now() - t) / 1000;
      if (!/^b[a-z2-7]+\n$/.test(stdout)) throw new Error(`push printed no CID: ${stdout}`);
      results[img.label] = { seconds, rssMiB: Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024, baseline };
    }
    const [small, big] = [results['100mib']!, results['300mib']!];
    emit({ bench: 'push.300mib', value: big.seconds, unit: 's', baseline: big.baseline, target: `ratio vs ipfs add of the tars; upstream ${UPSTREAM_SECONDS} s for 200 MiB` });
    emit({ bench: 'push.100mib', value: small.seconds, unit: 's', baseline: small.baseline, target: 'ratio vs ipfs add of the tar' });
    emit({ bench: 'push.300mib.peak_rss', value: big.rssMiB, unit: 'MiB', baseline: small.rssMiB, target: 'ratio <= 1.25 (baseline: the 100 MiB push)' });
  } finally {
    await ctd.stop();
    await kubo.stop();
    destroyScratch(scratch);
  }
}
