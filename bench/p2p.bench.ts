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
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit } from './report.js';
import { makeScratch, destroyScratch } from '../test/harness/scratch.js';
import { Swarm, startLayerMount } from '../test/harness/swarm.js';
import { estargzOf } from '../test/harness/layer-blobs.js';

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
    const full = (): Sample => {
      cold();
      const rx0 = net.counters('b').rx;
      const t0 = performance.now();
      const out = b.cli(['cat', cid]);
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
  } finally {
    await swarm?.destroy();
    destroyScratch(scratch);
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
