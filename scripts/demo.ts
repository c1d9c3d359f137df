/**
 * `npm run demo`: the whole mission on one machine, under a temporary root. Starts a Kubo
 * node, containerd (Debian's 1.6) wired to our daemon in IPFS mode, builds a small image
 * (busybox + a 64 MiB data file), ipfs-pushes it, rpulls it by CID and runs it lazily, then
 * prints the CID, the timings and how many bytes came from IPFS against the image size.
 * Everything it starts is stopped and removed at the end, also on failure.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale } from '../test/harness/scratch.js';
import { startKubo } from '../test/harness/kubo.js';
import { startContainerd } from '../test/harness/containerd.js';
import { metricValue, startDaemon } from '../test/harness/daemon.js';
import { buildImage } from '../test/harness/push-fixtures.js';
import { freePort } from '../test/harness/proc.js';

const run = promisify(execFile);
const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
const say = (s: string) => process.stdout.write(s + '\n');

const fetchedBytes = (metrics: string): Promise<number> => metricValue(metrics, 'stargz_ipfs_fetched_bytes_total');

async function main(): Promise<void> {
  reapStale();
  const scratch = makeScratch();
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const kubo = await startKubo(scratch);
    stops.push(() => kubo.stop());
    say(`kubo: IPFS_PATH=${kubo.ipfsPath}, API ${kubo.apiUrl}`);
    const port = await freePort();
    const metrics = `http://127.0.0.1:${port}/metrics`;
    const daemon = await startDaemon(scratch, { config: `ipfs = true\nmetrics_address = "127.0.0.1:${port}"\n`, env: { IPFS_PATH: kubo.ipfsPath } });
    stops.push(() => daemon.stop());
    say(`stargz-ipfs-grpc: socket ${daemon.socket}, root ${daemon.root}`);
    const ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
    stops.push(() => ctd.stop());
    const env = { ...process.env, IPFS_PATH: kubo.ipfsPath };
    const ctrArgs = ['--address', ctd.address, '--namespace', ctd.namespace];

    // The demo image: busybox, and a layer with a 64 MiB file the container never reads.
    const imgDir = join(scratch, 'img');
    const img = await buildImage(imgDir, {
      name: 'docker.io/library/sgipfs-demo:latest',
      layers: [{ 'data/big.bin': { size: 64 << 20, seed: 7 }, 'data/hello.txt': 'hello from a lazily pulled IPFS image\n' }],
    });
    await ctd.ctr(['images', 'import', img.tarPath]);
    const imageBytes = statSync(img.tarPath).size;

    let t = performance.now();
    const push = await run(process.execPath, [cli, 'image', 'ipfs-push', '--quiet', ...ctrArgs, img.name], { env });
    const cid = push.stdout.trim().split('\n').pop()!;
    say(`ipfs-push: ${((performance.now() - t) / 1000).toFixed(2)} s → CID ${cid}`);

    const before = await fetchedBytes(metrics);
    t = performance.now();
    await run(process.execPath, [cli, 'image', 'rpull', '--ipfs', ...ctrArgs, cid], { env });
    const pulled = performance.now();
    const out = await ctd.ctr(['run', '--rm', '--snapshotter', 'stargz', cid, 'demo', '/bin/cat', '/data/hello.txt'], { timeoutMs: 60_000 });
    const done = performance.now();
    say(`rpull --ipfs: ${((pulled - t) / 1000).toFixed(2)} s; ctr run: ${((done - pulled) / 1000).toFixed(2)} s; container said: ${out.trim()}`);
    const fetched = (await fetchedBytes(metrics)) - before;
    say(`bytes read by the daemon from IPFS: ${(fetched / 1e6).toFixed(2)} MB of a ${(imageBytes / 1e6).toFixed(2)} MB image`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    destroyScratch(scratch);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
