/**
 * The daemon dies under a running container (issue: kill -9 while a container reads).
 * Debian's containerd 1.6 + runc run a container from an IPFS image lazily through our
 * daemon; the container reads files in a loop and logs each checksum to a host dir. We
 * SIGKILL the daemon mid-loop and start it again: the container's reads go on succeeding
 * throughout (its layer server outlives the daemon), data it read before the kill is
 * served again without a byte from IPFS (page cache dropped, so the reads reach FUSE),
 * and a file first read after the restart is fetched through the adopted layer server.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { startContainerd, type Containerd } from './harness/containerd.js';
import { metricValue, startDaemon, type DaemonProc } from './harness/daemon.js';
import { buildImage } from './harness/push-fixtures.js';
import { freePort, waitFor } from './harness/proc.js';
import { cidOf, daemonConfig, runCli, seededBytes, sha256Hex } from './harness/e2e-image.js';

const MiB = 1024 * 1024;
const A = seededBytes(3 * MiB + 17, 'kill-container-a');
const B = seededBytes(2 * MiB + 5, 'kill-container-b');

let scratch: string;
let kubo: KuboNode;
let daemon: DaemonProc;
let ctd: Containerd;
let config: string;
let metricsUrl: string;
const container = `sgt-kill-${process.pid}`;

const metric = (sample: string): Promise<number> => metricValue(metricsUrl, sample);

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  // No background fetch: every IPFS byte after the start is one a read asked for.
  config = daemonConfig(`metrics_address = "127.0.0.1:${port}"\nno_background_fetch = true\n`);
  daemon = await startDaemon(scratch, { config, env: { IPFS_PATH: kubo.ipfsPath } });
  ctd = await startContainerd(scratch, { stargzSocket: daemon.socket });
});

after(async () => {
  await ctd?.ctr(['task', 'kill', '-s', 'SIGKILL', container]).catch(() => {});
  await ctd?.ctr(['task', 'delete', '-f', container]).catch(() => {});
  await ctd?.ctr(['containers', 'delete', container]).catch(() => {});
  await ctd?.stop();
  await daemon?.stop();
  await kubo?.stop();
  destroyScratch(scratch);
});

test('kill -9 of the daemon while a container reads: its reads go on, and what it read before is not fetched again', async () => {
  const env = { IPFS_PATH: kubo.ipfsPath };
  const dir = join(scratch, 'image');
  mkdirSync(dir);
  const built = await buildImage(dir, { name: 'example.com/sgt/kill:1', layers: [{ 'data/a.bin': A, 'data/b.bin': B }] });
  await ctd.ctr(['images', 'import', built.tarPath]);
  const cid = cidOf(await runCli(['image', 'ipfs-push', '--quiet', '--address', ctd.address, '--namespace', ctd.namespace, built.name], env));
  for (const name of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', name]);
  const pulled = await runCli(['image', 'rpull', '--ipfs', '--address', ctd.address, '--namespace', ctd.namespace, cid], env);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(pulled.stdout, /2 lazy, 0 pulled/);

  const out = join(scratch, 'out');
  mkdirSync(out);
  const script = 'while :; do sha256sum /data/a.bin; [ -f /out/go ] && sha256sum /data/b.bin; sleep 0.05; done >>/out/log 2>&1';
  await ctd.ctr(['run', '-d', '--snapshotter', 'stargz', '--mount', `type=bind,src=${out},dst=/out,options=rbind:rw`, cid, container, '/bin/sh', '-c', script]);
  const log = () => {
    try {
      return readFileSync(join(out, 'log'), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const aLine = `${sha256Hex(A)}  /data/a.bin`;
  const bLine = `${sha256Hex(B)}  /data/b.bin`;
  await waitFor('the container reads a.bin', 30_000, () => (log().length >= 3 ? true : undefined));
  const fetchedBefore = await metric('stargz_ipfs_fetched_bytes_total');
  assert.ok(fetchedBefore >= A.length, `a.bin came from IPFS (${fetchedBefore} bytes)`);

  await daemon.stop('SIGKILL');
  const atKill = log().length;
  await waitFor('reads go on with the daemon dead', 10_000, () => (log().length >= atKill + 5 ? true : undefined));

  daemon = await startDaemon(scratch, { config, env, logName: 'daemon-2.log' });
  assert.match(daemon.log(), /"adopted running layer server"/);
  await waitFor('containerd reconnected', 30_000, () => ctd.ctr(['snapshots', '--snapshotter', 'stargz', 'ls']).then(() => true, () => undefined));
  // Make the next reads of a.bin reach the FUSE mount instead of the page cache.
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  const atRestart = log().length;
  await waitFor('reads after the restart', 10_000, () => (log().length >= atRestart + 5 ? true : undefined));
  assert.equal(await metric('stargz_ipfs_fetched_bytes_total'), fetchedBefore, 'no IPFS bytes for data read before the kill');

  writeFileSync(join(out, 'go'), '');
  await waitFor('b.bin read after the restart', 30_000, () => (log().includes(bLine) ? true : undefined));
  assert.ok((await metric('stargz_ipfs_fetched_bytes_total')) >= fetchedBefore + B.length, 'b.bin was fetched through the adopted layer server');
  await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', container]);
  const lines = log();
  const wrong = lines.filter((l) => l !== aLine && l !== bLine);
  assert.deepEqual(wrong, [], 'every read in the container succeeded with the right bytes');
  assert.ok(lines.length >= atRestart + 5);
});
