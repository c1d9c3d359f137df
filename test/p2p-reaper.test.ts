/**
 * A p2p test run killed with SIGKILL leaves namespaces, online Kubos (each in its own
 * namespace) and a scratch dir behind; the next run's reapers remove all of it.
 * Run as a plain script with SGT_P2P_CRASH_CHILD=1, this file is that victim run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { makeScratch, reapStale } from './harness/scratch.js';
import { Swarm } from './harness/swarm.js';
import { netnsOf, reapStaleNetns } from './harness/netns.js';

const nsPids = (ns: string): number[] => execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);

if (process.env.SGT_P2P_CRASH_CHILD === '1') {
  const scratch = makeScratch();
  const swarm = new Swarm(scratch);
  await swarm.addNode('a', { rate: '100mbit' });
  await swarm.addNode('b', { peers: ['a'] });
  process.stdout.write(JSON.stringify({ scratch, namespaces: netnsOf(process.pid) }) + '\n');
  setInterval(() => {}, 1 << 30);
} else {
  test('a p2p run killed with SIGKILL leaves nothing the next run cannot clean', async () => {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname], {
      env: { ...process.env, SGT_P2P_CRASH_CHILD: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      const { scratch, namespaces } = JSON.parse(line) as { scratch: string; namespaces: string[] };
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;

      // The orphans are really there: three namespaces, a Kubo still running in each node's.
      assert.equal(namespaces.length, 3);
      for (const ns of namespaces) assert.ok(existsSync(`/run/netns/${ns}`), ns);
      const kubos = namespaces.filter((ns) => !ns.endsWith('-hub')).flatMap(nsPids);
      assert.equal(kubos.length, 2);

      // ...and the next run's reapers remove them.
      reapStale();
      const removed = reapStaleNetns();
      for (const ns of namespaces) assert.ok(removed.includes(ns), `${ns} reaped`);
      for (const ns of namespaces) assert.equal(existsSync(`/run/netns/${ns}`), false, ns);
      for (const pid of kubos) assert.equal(existsSync(`/proc/${pid}/cmdline`) && execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }).split(') ')[1]![0] !== 'Z', false, `kubo ${pid} gone`);
      assert.equal(existsSync(scratch), false);
    } finally {
      child.kill('SIGKILL');
    }
  });
}
