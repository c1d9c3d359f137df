/**
 * p2p: seeder A and worker B in network namespaces of a private swarm, A's link shaped to
 * 100 Mbit/s (tbf). An eStargz layer (a 64 MiB random file + small files) lives on A only.
 * Truly cold on B before each sample: B's Kubo blockstore emptied with `ipfs repo gc`
 * (nothing is pinned on B), a fresh cache root, a fresh mount (no page cache).
 *
 * - p2p.first_read: `stargz-ipfs layer mount --cid` started in B's namespace until the
 *   small files a process needs at start (a 22 B config and a 300 KiB binary) are read,
 *   against the full `ipfs cat` of the layer on B (what a non-lazy pull must fetch at least).
 * - p2p.cold_seq_read: the 64 MiB file read sequentially through the fresh mount, against
 *   `ipfs cat` of the whole layer over the same link.
 * Bytes are what B's interface received (`ip -s link`). One warm-up, then 5 samples per
 * mode, interleaved; median and p95.
 * - p2p.second_worker: after B has read the whole layer, a third node C (peered with A and
 *   B) mounts it cold and reads everything; its time, and the share of the bytes B sent
 *   of what A and B sent together (bitswap asks every connected peer).
 *
 * Cold start of a container (issue 13), on the e2e bench image (busybox-static + two
 * layers of a 100 MiB random file and 150 small files, reproducible), built and imported
 * into A's own containerd and `ipfs-push`ed in A's namespace. Worker B has its own
 * containerd (root namespace) and our daemon (`ipfs = true`, B's namespace, B's Kubo).
 * Truly cold on B before each sample: image removed + containerd GC, B's Kubo unpinned +
 * `ipfs repo gc`, our daemon restarted on an empty root/cache, page cache dropped.
 * - p2p.cold_start.lazy: `rpull --ipfs CID` (in B's namespace) + `ctr run --rm
 *   --snapshotter stargz CID … /bin/echo hello`;
 * - p2p.cold_start.full: the same with `--snapshotter overlayfs` (every layer pulled);
 * - p2p.cold_start.ratio: lazy / full, target <= 0.06 (published upstream 0.097);
 * each with the bytes B received on its link. One warm-up per mode, then P2P_SAMPLES
 * (default 5) per mode, interleaved; median and p95.
 * - p2p.second_worker.cold_start: right after B's last lazy sample, a third worker W
 *   (containerd + daemon, peered with A and B) starts the image cold; its time, and the
 *   share of its received bytes that B sent (A's and B's link counters).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit } from './report.js';
import { makeScratch, destroyScratch } from '../test/harness/scratch.js';
import { Swarm, startLayerMount, startDaemonOn, runCliOn, emptyBlockstore, type NodeDaemon, type SwarmNode } from '../test/harness/swarm.js';
import { estargzOf } from '../test/harness/layer-blobs.js';
import { findTool } from '../test/harness/tools.js';
import { startContainerd, haveContainerd, type Containerd } from '../test/harness/containerd.js';
import { buildImage } from '../test/harness/push-fixtures.js';
import { waitFor } from '../test/harness/proc.js';
import { benchLayer, cidOf, daemonConfig } from '../test/harness/e2e-image.js';

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const SAMPLES = 5;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface Sample {
  seconds: number;
  bytes: number;
}

export async function run(): Promise<void> {
  const scratch = makeScratch();
  let swarm: Swarm | undefined;
  try {
    swarm = new Swarm(scratch);
    const small: Record<string, Buffer> = { 'etc/app.conf': Buffer.from('listen = 8080\nmode = fast\n'), 'bin/app': randomBytes(300 << 10) };
    const big = randomBytes(BIG);
    const { blob, result } = await estargzOf([
      { name: 'bin/', type: 'directory' },
      { name: 'etc/', type: 'directory' },
      { name: 'data/', type: 'directory' },
      ...Object.entries(small).map(([name, data]) => ({ name, data })),
      { name: 'data/big.bin', data: big },
    ]);
    const a = await swarm.addNode('a', { rate: '100mbit' });
    const b = await swarm.addNode('b', { peers: ['a'] });
    const cid = a.add(blob);
    await swarm.connected('b', 'a');
    const net = swarm.net;

    const cold = (): void => {
      b.cli(['repo', 'gc', '--quiet']);
      const left = b.cli(['refs', 'local']).toString().split('\n').filter(Boolean).length;
      if (left > 16) throw new Error(`B still holds ${left} blocks after gc`);
    };
    let n = 0;
    const lazy = async (gc = true): Promise<{ first: Sample; seq: Sample }> => {
      if (gc) cold();
      n++;
      const rx0 = net.counters('b').rx;
      const t0 = performance.now();
      const m = await startLayerMount(b, {
        cid,
        tocDigest: result.tocDigest,
        dir: join(scratch, `mnt-${n}`),
        root: join(scratch, `root-${n}`),
        config: 'no_background_fetch = true\n',
      });
      try {
        for (const [name, data] of Object.entries(small)) if (sha(await readFile(join(m.dir, name))) !== sha(data)) throw new Error(`${name} differs`);
        const first = { seconds: (performance.now() - t0) / 1000, bytes: net.counters('b').rx - rx0 };
        const rx1 = net.counters('b').rx;
        const t1 = performance.now();
        const h = createHash('sha256');
        const fh = await open(join(m.dir, 'data/big.bin'));
        try {
          const buf = Buffer.alloc(MiB);
          for (let pos = 0; ; ) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead === 0) break;
            h.update(buf.subarray(0, bytesRead));
            pos += bytesRead;
          }
        } finally {
          await fh.close();
        }
        const seq = { seconds: (performance.now() - t1) / 1000, bytes: net.counters('b').rx - rx1 };
        if (h.digest('hex') !== sha(big)) throw new Error('big.bin differs');
        return { first, seq };
      } finally {
        await m.stop();
      }
    };
    const full = (retry = true): Sample => {
      cold();
      const rx0 = net.counters('b').rx;
      const t0 = performance.now();
      // Bitswap on B has been seen to stall for good after a `repo gc` (no byte moves):
      // a sample that takes 10× the expected time is dropped and taken again once.
      let out: Buffer;
      try {
        const w = b.wrap(findTool('ipfs'), ['cat', cid]);
        out = execFileSync(w.cmd, w.args, { env: b.env, maxBuffer: 1 << 30, timeout: 90_000, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        if (!retry) throw err;
        process.stderr.write(`p2p: full ipfs cat on B stalled (${String(err).slice(0, 200)}); sample taken again\n`);
        return full(false);
      }
      const s = { seconds: (performance.now() - t0) / 1000, bytes: net.counters('b').rx - rx0 };
      if (out.length !== blob.length) throw new Error(`ipfs cat gave ${out.length} of ${blob.length} bytes`);
      return s;
    };

    await lazy();
    full();
    const lazies: { first: Sample; seq: Sample }[] = [];
    const fulls: Sample[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      lazies.push(await lazy());
      fulls.push(full());
    }
    const firsts = lazies.map((l) => l.first);
    const seqs = lazies.map((l) => l.seq);
    const med = (xs: number[]): number => quantile(xs, 0.5);
    const p95 = (xs: number[]): number => quantile(xs, 0.95);
    const secs = (xs: Sample[]): number[] => xs.map((x) => x.seconds);
    const bytes = (xs: Sample[]): number[] => xs.map((x) => x.bytes);

    emit({ bench: 'p2p.first_read.lazy', value: med(secs(firsts)), unit: 's', baseline: med(secs(fulls)), target: 'report: mount + first files vs full ipfs cat (issue 13 targets cold_start.ratio <= 0.06 with a container run)' });
    emit({ bench: 'p2p.first_read.lazy.p95', value: p95(secs(firsts)), unit: 's', baseline: p95(secs(fulls)), target: 'report' });
    emit({ bench: 'p2p.first_read.lazy.bytes', value: med(bytes(firsts)) / 1e6, unit: 'MB', baseline: med(bytes(fulls)) / 1e6, target: 'bytes over the link, lazy vs full' });
    emit({ bench: 'p2p.cold_seq_read', value: BIG / 1e6 / med(secs(seqs)), unit: 'MB/s', baseline: blob.length / 1e6 / med(secs(fulls)), target: 'ratio >= 0.8 (link is 12.5 MB/s)' });
    // Second worker: B holds every block (it read the whole layer in the last sample).
    await lazy(false);
    const c = await swarm.addNode('c', { peers: ['a', 'b'] });
    await swarm.connected('c', 'a');
    await swarm.connected('c', 'b');
    const txA = net.counters('a').tx;
    const txB = net.counters('b').tx;
    const t = performance.now();
    const mc = await startLayerMount(c, { cid, tocDigest: result.tocDigest, dir: join(scratch, 'mnt-c'), root: join(scratch, 'root-c'), config: 'no_background_fetch = true\n' });
    try {
      for (const [name, data] of [...Object.entries(small), ['data/big.bin', big] as const]) {
        if (sha(await readFile(join(mc.dir, name))) !== sha(data)) throw new Error(`C: ${name} differs`);
      }
    } finally {
      await mc.stop();
    }
    const secondSeconds = (performance.now() - t) / 1000;
    const fromA = net.counters('a').tx - txA;
    const fromB = net.counters('b').tx - txB;
    emit({ bench: 'p2p.second_worker', value: secondSeconds, unit: 's', baseline: med(secs(seqs)) + med(secs(firsts)), target: 'C reads the whole layer; baseline: B cold from A alone' });
    emit({ bench: 'p2p.second_worker.from_b', value: fromB / 1e6, unit: 'MB', baseline: (fromA + fromB) / 1e6, target: 'report: ratio = share of the bytes C got from B' });
    emit({ bench: 'p2p.cold_seq_read.bytes', value: med(bytes(seqs)) / 1e6, unit: 'MB', baseline: BIG / 1e6, target: 'bytes over the link vs the file size; ratio ~1.0' });

    if (haveContainerd()) await coldStart(swarm, scratch);
    else process.stderr.write('p2p.cold_start skipped: containerd and runc are not installed\n');
  } finally {
    await swarm?.destroy();
    destroyScratch(scratch);
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

const COLD_SAMPLES = Number(process.env.P2P_SAMPLES ?? SAMPLES);
/** The published upstream figure on a real network (python hello: 1.10 s vs 11.32 s). */
const UPSTREAM_RATIO = 0.097;

/** A worker: its own containerd in the root namespace, our daemon in the node's namespace. */
interface Worker {
  readonly node: SwarmNode;
  readonly ctd: Containerd;
  daemon: NodeDaemon;
  stop(): Promise<void>;
}

async function startWorker(node: SwarmNode, scratch: string): Promise<Worker> {
  const dir = join(scratch, `worker-${node.net.name}`);
  const daemonDir = join(dir, 'daemon');
  let daemon = await startDaemonOn(node, daemonDir, daemonConfig());
  let ctd: Containerd;
  try {
    ctd = await startContainerd(join(dir, 'ctd'), { stargzSocket: daemon.socket });
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  const w: Worker = {
    node,
    ctd,
    get daemon() {
      return daemon;
    },
    set daemon(d: NodeDaemon) {
      daemon = d;
    },
    async stop() {
      await ctd.stop();
      await daemon.stop();
    },
  };
  return w;
}

async function coldStart(swarm: Swarm, scratch: string): Promise<void> {
  const a = swarm.node('a');
  const b = swarm.node('b');
  const net = swarm.net;
  const ctdA = await startContainerd(join(scratch, 'seeder-a'));
  const workers: Worker[] = [];
  try {
    const dir = join(scratch, 'e2e-image');
    mkdirSync(dir);
    let t = performance.now();
    const built = await buildImage(dir, { name: 'example.com/bench/e2e:1', layers: [benchLayer(1), benchLayer(2)] });
    await ctdA.ctr(['images', 'import', built.tarPath], { timeoutMs: 600_000 });
    const cid = cidOf(await runCliOn(a, ['image', 'ipfs-push', '--quiet', '--address', ctdA.address, '--namespace', ctdA.namespace, built.name]));
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`p2p: e2e image ${cid} built and pushed on A in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);

    const wb = await startWorker(b, scratch);
    workers.push(wb);
    await swarm.connected('b', 'a');
    let restarts = 0;
    const snapshotCount = async (w: Worker, sn: string) => (await w.ctd.ctr(['snapshots', '--snapshotter', sn, 'ls'])).trim().split('\n').length - 1;
    const cold = async (w: Worker): Promise<void> => {
      if ((await w.ctd.ctr(['images', 'ls', '-q'])).split('\n').includes(cid)) await w.ctd.ctr(['images', 'rm', '--sync', cid]);
      await waitFor('snapshots collected', 60_000, async () => ((await snapshotCount(w, 'stargz')) + (await snapshotCount(w, 'overlayfs')) === 0 ? true : undefined));
      await w.daemon.stop();
      const daemonDir = join(scratch, `worker-${w.node.net.name}`, 'daemon');
      rmSync(join(daemonDir, 'root'), { recursive: true, force: true });
      renameSync(join(daemonDir, 'daemon.log'), join(daemonDir, `daemon-${++restarts}.log`));
      w.daemon = await startDaemonOn(w.node, daemonDir, daemonConfig());
      await waitFor('containerd reconnected', 30_000, () => snapshotCount(w, 'stargz').then(() => true, () => undefined));
      emptyBlockstore(w.node);
      execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    };
    let runs = 0;
    /** One cold sample; a stalled or failed one is logged and taken again once (cold). */
    const sample = async (w: Worker, mode: 'lazy' | 'full'): Promise<Sample & { fromOthers: Record<string, number> }> => {
      try {
        return await sampleOnce(w, mode);
      } catch (err) {
        process.stderr.write(`p2p: ${mode} sample on ${w.node.net.name} failed (${String(err).slice(0, 300)}); taken again\n`);
        await cold(w);
        return sampleOnce(w, mode);
      }
    };
    const sampleOnce = async (w: Worker, mode: 'lazy' | 'full'): Promise<Sample & { fromOthers: Record<string, number> }> => {
      const sn = mode === 'lazy' ? 'stargz' : 'overlayfs';
      const name = w.node.net.name;
      const rx0 = net.counters(name).rx;
      const tx0 = Object.fromEntries([...swarm.nodes.keys()].filter((n) => n !== name).map((n) => [n, net.counters(n).tx]));
      const t0 = performance.now();
      const r = await runCliOn(w.node, ['image', 'rpull', '--ipfs', '--snapshotter', sn, '--address', w.ctd.address, '--namespace', w.ctd.namespace, cid], 180_000);
      if (r.code !== 0) throw new Error(`rpull (${mode}) on ${name} failed: ${r.stderr.slice(-2000)}`);
      const out = await w.ctd.ctr(['run', '--rm', '--snapshotter', sn, cid, `p2p-bench-${process.pid}-${++runs}`, '/bin/echo', 'hello'], { timeoutMs: 180_000 });
      const seconds = (performance.now() - t0) / 1000;
      const bytes = net.counters(name).rx - rx0;
      if (out !== 'hello\n') throw new Error(`container printed ${JSON.stringify(out)}`);
      const fromOthers = Object.fromEntries(Object.entries(tx0).map(([n, v]) => [n, net.counters(n).tx - v]));
      return { seconds, bytes, fromOthers };
    };

    await cold(wb);
    await sample(wb, 'lazy');
    await cold(wb);
    await sample(wb, 'full');
    const lazy: Sample[] = [];
    const full: Sample[] = [];
    for (let i = 0; i < COLD_SAMPLES; i++) {
      await cold(wb);
      lazy.push(await sample(wb, 'lazy'));
      await cold(wb);
      full.push(await sample(wb, 'full'));
      process.stderr.write(`p2p cold start ${i + 1}/${COLD_SAMPLES}: lazy ${lazy.at(-1)!.seconds.toFixed(3)} s ${(lazy.at(-1)!.bytes / 1e6).toFixed(2)} MB, full ${full.at(-1)!.seconds.toFixed(3)} s ${(full.at(-1)!.bytes / 1e6).toFixed(2)} MB\n`);
    }
    const med = (xs: number[]): number => quantile(xs, 0.5);
    const p95 = (xs: number[]): number => quantile(xs, 0.95);
    const secs = (xs: Sample[]): number[] => xs.map((x) => x.seconds);
    const mb = (xs: Sample[]): number => med(xs.map((x) => x.bytes)) / 1e6;
    const n = `median of ${COLD_SAMPLES} (1 warm-up), 100 Mbit/s link`;
    emit({ bench: 'p2p.cold_start.lazy', value: med(secs(lazy)), unit: 's', baseline: null, target: `${n}; rpull --ipfs + ctr run --snapshotter stargz on B` });
    emit({ bench: 'p2p.cold_start.lazy.p95', value: p95(secs(lazy)), unit: 's', baseline: null, target: 'p95, printed' });
    emit({ bench: 'p2p.cold_start.lazy.bytes', value: mb(lazy), unit: 'MB', baseline: mb(full), target: 'bytes B received on its link, lazy vs full' });
    emit({ bench: 'p2p.cold_start.full', value: med(secs(full)), unit: 's', baseline: null, target: `${n}; rpull --snapshotter overlayfs + ctr run --snapshotter overlayfs on B` });
    emit({ bench: 'p2p.cold_start.full.p95', value: p95(secs(full)), unit: 's', baseline: null, target: 'p95, printed' });
    emit({ bench: 'p2p.cold_start.full.bytes', value: mb(full), unit: 'MB', baseline: null, target: 'bytes B received on its link' });
    emit({ bench: 'p2p.cold_start.ratio', value: med(secs(lazy)), unit: 's', baseline: med(secs(full)), target: `ratio <= 0.06 (published upstream ${UPSTREAM_RATIO})` });

    // Second worker: B has just run the image lazily (its Kubo holds what that read).
    await cold(wb);
    await sample(wb, 'lazy');
    const wNode = await swarm.addNode('w', { peers: ['a', 'b'] });
    const ww = await startWorker(wNode, scratch);
    workers.push(ww);
    await swarm.connected('w', 'a');
    await swarm.connected('w', 'b');
    execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const s = await sample(ww, 'lazy');
    const fromB = s.fromOthers['b'] ?? 0;
    const fromA = s.fromOthers['a'] ?? 0;
    process.stderr.write(`p2p second worker: ${s.seconds.toFixed(3)} s, received ${(s.bytes / 1e6).toFixed(2)} MB; A sent ${(fromA / 1e6).toFixed(2)} MB, B sent ${(fromB / 1e6).toFixed(2)} MB\n`);
    emit({ bench: 'p2p.second_worker.cold_start', value: s.seconds, unit: 's', baseline: med(secs(lazy)), target: 'one sample: W cold after B ran the image; baseline: B cold from A alone' });
    emit({ bench: 'p2p.second_worker.cold_start.from_b', value: fromB / 1e6, unit: 'MB', baseline: (fromA + fromB) / 1e6, target: 'report: ratio = share of the bytes W got from B' });
  } finally {
    for (const w of workers.reverse()) await w.stop().catch((err: unknown) => process.stderr.write(`worker stop: ${String(err)}\n`));
    await ctdA.stop();
  }
}
