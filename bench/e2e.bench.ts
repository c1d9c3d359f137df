/**
 * e2e: cold start of a container from an IPFS CID, lazy against full.
 *
 * The image of issue 12 (busybox-static; a layer of one 100 MiB random file + 150 small
 * files; another such layer), built offline and reproducibly (same CID every run), pushed
 * once with our ipfs-push. Every client (our CLI, our daemon) reaches Kubo's API through a
 * counting HTTP proxy (an IPFS_PATH dir whose `api` file names the proxy).
 *
 * Modes, alternating, one warm-up each then SAMPLES each, truly cold before every sample
 * (image removed + GC, daemon restarted on an empty root and cache, page cache dropped):
 * - lazy: `stargz-ipfs image rpull --ipfs CID` + `ctr run --rm --snapshotter stargz CID … /bin/echo hello`
 * - full: `… rpull --ipfs --snapshotter overlayfs CID` + `ctr run --rm --snapshotter overlayfs …`
 *
 * Containerd: Debian's 1.6 by default; E2E_CONTAINERD_DIR=<dir with containerd, ctr,
 * containerd-shim-runc-v2> (e.g. the 2.2.9 build) to use another.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, Agent, type Server } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { emit, median } from './report.js';
import { makeScratch, destroyScratch, reapStale } from '../test/harness/scratch.js';
import { startKubo } from '../test/harness/kubo.js';
import { startContainerd, type Containerd } from '../test/harness/containerd.js';
import { startDaemon, type DaemonProc } from '../test/harness/daemon.js';
import { buildImage } from '../test/harness/push-fixtures.js';
import { waitFor } from '../test/harness/proc.js';
import { benchLayer, cidOf, daemonConfig, MAIN_JS, runCli } from '../test/harness/e2e-image.js';

const execFileAsync = promisify(execFile);
const SAMPLES = Number(process.env.E2E_SAMPLES ?? 5);
/** Upstream's Go daemon on this image, this machine kind (shared/README.md, issue 12). */
const UPSTREAM = { lazy: 0.455, full: 1.77, ratio: 0.257, bytesMB: 1.13 };

interface Counter {
  bytes: number;
  requests: string[];
}

/** A reverse proxy to Kubo's API counting response bytes and requests (trailers passed on). */
async function countingProxy(target: string, counter: Counter): Promise<{ server: Server; port: number }> {
  const up = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    counter.requests.push(path.replace(/\?.*$/, '') + (path.includes('offset=') ? ' (range)' : ''));
    const fwd = request({ host: up.hostname, port: up.port, path, method: req.method, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.on('data', (c: Buffer) => (counter.bytes += c.length));
      ur.on('end', () => res.addTrailers(ur.trailers as Record<string, string>));
      ur.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

const p95 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]!;
};

interface Sample {
  seconds: number;
  bytes: number;
  requests: number;
  paths: string[];
  rpullWall: number;
  resolveMs: number;
  layerMs: number[];
  startupMs: number;
  /** rpull's own wall time from process start to its summary line. */
  procMs: number;
  runWall: number;
}

export async function run(): Promise<void> {
  reapStale();
  const scratch = makeScratch();
  const kubo = await startKubo(scratch);
  const counter: Counter = { bytes: 0, requests: [] };
  const proxy = await countingProxy(kubo.apiUrl, counter);
  const proxyPath = join(scratch, 'ipfs-proxy');
  mkdirSync(proxyPath);
  writeFileSync(join(proxyPath, 'api'), `/ip4/127.0.0.1/tcp/${proxy.port}`);
  const env = { IPFS_PATH: proxyPath };
  const socket = join(scratch, 'sn', 's.sock');
  let rootN = 0;
  let daemon: DaemonProc | undefined;
  const startFreshDaemon = async () => {
    const root = join(scratch, `root-${++rootN}`);
    daemon = await startDaemon(scratch, { config: daemonConfig(), env, root, socket, logName: `daemon-${rootN}.log` });
  };
  await startFreshDaemon();
  const ctdDir = process.env.E2E_CONTAINERD_DIR;
  const ctd: Containerd = await startContainerd(scratch, {
    stargzSocket: socket,
    ...(ctdDir && { stargzRoot: join(scratch, 'root-1'), containerdBin: join(ctdDir, 'containerd'), ctrBin: join(ctdDir, 'ctr'), shimDir: ctdDir }),
  });
  try {
    const dir = join(scratch, 'image');
    mkdirSync(dir);
    let t = performance.now();
    const built = await buildImage(dir, { name: 'example.com/bench/e2e:1', layers: [benchLayer(1), benchLayer(2)] });
    await ctd.ctr(['images', 'import', built.tarPath], { timeoutMs: 600_000 });
    const where = ['--address', ctd.address, '--namespace', ctd.namespace];
    const cid = cidOf(await runCli(['image', 'ipfs-push', '--quiet', ...where, built.name], env));
    process.stderr.write(`e2e image ${cid} built and pushed in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    for (const name of (await ctd.ctr(['images', 'ls', '-q'])).split('\n').filter(Boolean)) await ctd.ctr(['images', 'rm', '--sync', name]);

    const snapshotCount = async (sn: string) => (await ctd.ctr(['snapshots', '--snapshotter', sn, 'ls'])).trim().split('\n').length - 1;
    const cold = async () => {
      if ((await ctd.ctr(['images', 'ls', '-q'])).split('\n').includes(cid)) await ctd.ctr(['images', 'rm', '--sync', cid]);
      await waitFor('snapshots collected', 60_000, async () => ((await snapshotCount('stargz')) + (await snapshotCount('overlayfs')) === 0 ? true : undefined));
      await daemon!.stop();
      rmSync(daemon!.root, { recursive: true, force: true });
      await startFreshDaemon();
      await waitFor('containerd reconnected', 30_000, () => snapshotCount('stargz').then(() => true, () => undefined));
      execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
      counter.bytes = 0;
      counter.requests = [];
    };
    let runs = 0;
    const sample = async (mode: 'lazy' | 'full'): Promise<Sample> => {
      await cold();
      const sn = mode === 'lazy' ? 'stargz' : 'overlayfs';
      const t0 = performance.now();
      const { stdout } = await execFileAsync(process.execPath, [MAIN_JS, 'image', 'rpull', '--ipfs', '--snapshotter', sn, ...where, cid], {
        env: { ...process.env, ...env },
        maxBuffer: 16 << 20,
      });
      const t1 = performance.now();
      const out = await ctd.ctr(['run', '--rm', '--snapshotter', sn, cid, `e2e-bench-${++runs}`, '/bin/echo', 'hello']);
      const t2 = performance.now();
      if (out !== 'hello\n') throw new Error(`container printed ${JSON.stringify(out)}`);
      const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
      return {
        seconds: (t2 - t0) / 1000,
        bytes: counter.bytes,
        requests: counter.requests.length,
        paths: [...counter.requests],
        rpullWall: t1 - t0,
        resolveMs: num(/resolved \S+: \d+ layer\(s\) in (\d+) ms/),
        layerMs: [...stdout.matchAll(/^layer \d+\/\d+ .* in (\d+) ms$/gm)].map((m) => Number(m[1])),
        startupMs: num(/\(start-up (\d+) ms/),
        procMs: num(/from IPFS in ([\d.]+) s/) * 1000,
        runWall: t2 - t1,
      };
    };

    await sample('lazy');
    await sample('full');
    const lazy: Sample[] = [];
    const full: Sample[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      lazy.push(await sample('lazy'));
      full.push(await sample('full'));
      process.stderr.write(`sample ${i + 1}: lazy ${lazy.at(-1)!.seconds.toFixed(3)} s (${(lazy.at(-1)!.bytes / 1e6).toFixed(3)} MB, ${lazy.at(-1)!.requests} requests), full ${full.at(-1)!.seconds.toFixed(3)} s\n`);
    }
    const lazyS = lazy.map((s) => s.seconds);
    const fullS = full.map((s) => s.seconds);
    const bytesMB = median(lazy.map((s) => s.bytes)) / 1e6;
    emit({ bench: 'e2e.cold_start.lazy', value: median(lazyS), unit: 's', baseline: UPSTREAM.lazy, target: `median of ${SAMPLES}; upstream ${UPSTREAM.lazy} s` });
    emit({ bench: 'e2e.cold_start.lazy.p95', value: p95(lazyS), unit: 's', baseline: null, target: 'p95, printed' });
    emit({ bench: 'e2e.bytes_before_start.lazy', value: bytesMB, unit: 'MB', baseline: UPSTREAM.bytesMB, target: `<= 1.2 MB (upstream ${UPSTREAM.bytesMB} MB)` });
    emit({ bench: 'e2e.cold_start.full', value: median(fullS), unit: 's', baseline: UPSTREAM.full, target: `median of ${SAMPLES}; upstream ${UPSTREAM.full} s` });
    emit({ bench: 'e2e.cold_start.full.p95', value: p95(fullS), unit: 's', baseline: null, target: 'p95, printed' });
    emit({ bench: 'e2e.cold_start.ratio', value: median(lazyS), unit: 's', baseline: median(fullS), target: `ratio <= 0.2 (upstream ${UPSTREAM.ratio})` });

    // Where the lazy time goes (medians, ms).
    const m = (f: (s: Sample) => number) => Math.round(median(lazy.map(f)));
    const layerMs = lazy[0]!.layerMs.map((_, i) => m((s) => s.layerMs[i] ?? NaN));
    const ipfsRequests = median(lazy.map((s) => s.requests));
    process.stderr.write(
      `lazy breakdown (median ms): total ${m((s) => s.seconds * 1000)} = rpull ${m((s) => s.rpullWall)} ` +
        `[node start-up + module load ${m((s) => s.startupMs)} (IPFS resolve ${m((s) => s.resolveMs)} overlaps it), ` +
        `per-layer Prepare/mount ${layerMs.join(' + ')}, ` +
        `other containerd calls (lease, stats, documents, GC label, image record) ${m((s) => s.procMs - s.startupMs - s.layerMs.reduce((a, b) => a + b, 0))}, ` +
        `process spawn + exit ${m((s) => s.rpullWall - s.procMs)}] ` +
        `+ ctr run ${m((s) => s.runWall)} (full mode: rpull ${Math.round(median(full.map((s) => s.rpullWall)))} + ctr run ${Math.round(median(full.map((s) => s.runWall)))}); ` +
        `${ipfsRequests} IPFS API requests, ${bytesMB.toFixed(3)} MB\n`,
    );
    process.stderr.write(`lazy requests of the last sample: ${JSON.stringify(countRequests(lazy.at(-1)!.paths))}\n`);
  } finally {
    await ctd.stop();
    await daemon?.stop();
    proxy.server.close();
    await kubo.stop();
    destroyScratch(scratch);
  }
}

function countRequests(paths: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of paths) out[p] = (out[p] ?? 0) + 1;
  return out;
}
