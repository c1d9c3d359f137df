/**
 * The daemon as a process: its socket, crash safety of the metadata (kill -9 in the middle
 * of writes, then restart), Prometheus endpoint and systemd readiness.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { freePort, startProc, waitFor, sleep, type Proc } from './harness/proc.js';
import { connectSnapshots, type SnapshotsClient } from '../src/service/client.js';

const daemonJs = new URL('../src/cli/daemon.js', import.meta.url).pathname;
let scratch: string;
let seq = 0;
const procs: Proc[] = [];

before(() => {
  reapStale();
  scratch = makeScratch();
});
after(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  destroyScratch(scratch);
});

interface Started {
  proc: Proc;
  sn: SnapshotsClient;
  log: () => string;
}

/** Starts `stargz-ipfs-grpc` and waits until its socket answers. */
async function startDaemon(dir: string, opts: { config?: string; env?: NodeJS.ProcessEnv; address?: string } = {}): Promise<Started> {
  const config = join(dir, 'config.toml');
  writeFileSync(config, opts.config ?? '');
  const address = opts.address ?? join(dir, 'run', 's.sock');
  const proc = startProc(process.execPath, [daemonJs, '--root', join(dir, 'root'), '--address', address, '--config', config], join(dir, `daemon-${++seq}.log`), {
    env: { ...process.env, ...opts.env },
  });
  procs.push(proc);
  // Connect once the daemon listens: a client that finds no socket backs off for a second.
  await waitFor('daemon started', 15_000, () => {
    if (proc.child.exitCode !== null) throw new Error(`daemon exited: ${readFileSync(proc.logPath, 'utf8')}`);
    return readFileSync(proc.logPath, 'utf8').includes('"msg":"daemon started"') || undefined;
  });
  const sn = connectSnapshots(address);
  return { proc, sn, log: () => readFileSync(proc.logPath, 'utf8') };
}

const fresh = (): string => {
  const dir = join(scratch, `d${++seq}`);
  mkdirSync(dir);
  return dir;
};

test('socket: directory created 0700, a stale socket replaced, a live one refused', async () => {
  const dir = fresh();
  const first = await startDaemon(dir);
  assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
  assert.ok(existsSync(join(dir, 'root', 'snapshotter', 'metadata.db')));

  const second = spawn(process.execPath, [daemonJs, '--root', join(dir, 'root2'), '--address', join(dir, 'run', 's.sock'), '--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  second.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => second.once('exit', r));
  assert.equal(code, 1);
  assert.match(stderr, /another process is serving/);

  first.proc.child.kill('SIGKILL');
  await first.proc.exited;
  first.sn.close();
  assert.ok(existsSync(join(dir, 'run', 's.sock')), 'kill -9 leaves the socket file');
  const again = await startDaemon(dir);
  assert.deepEqual((await again.sn.list()).infos, []);
  again.sn.close();
  await again.proc.stop();
});

test('kill -9 during writes, then restart: every acknowledged write is there, nothing half-done is', async () => {
  const dir = fresh();
  const d = await startDaemon(dir);
  await d.sn.prepare('base-a', '');
  await d.sn.commit('base', 'base-a');
  const committed = new Set<string>(['base']);
  let stop = false;
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const key = `w${w}-${i}`;
      try {
        await d.sn.prepare(`${key}-a`, 'base', { n: String(i) });
        await d.sn.commit(key, `${key}-a`, { writer: String(w) });
        committed.add(key);
        if (i % 3 === 0) {
          // A remove cut short by the kill may or may not have landed: stop vouching first.
          committed.delete(key);
          await d.sn.remove(key);
        }
      } catch {
        return; // the daemon is gone
      }
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await sleep(700);
  d.proc.child.kill('SIGKILL');
  await d.proc.exited;
  stop = true;
  await Promise.all(writers);
  d.sn.close();
  assert.ok(committed.size > 10, `made progress before the kill (${committed.size})`);

  const r = await startDaemon(dir);
  try {
    const { infos } = await r.sn.list();
    const names = new Set(infos.map((i) => i.name));
    for (const name of committed) assert.ok(names.has(name), `acknowledged commit ${name} survived`);
    for (const info of infos) {
      if (info.kind === 'COMMITTED' && info.name !== 'base') assert.equal(info.labels.writer, info.name.slice(1, 2), 'labels intact');
    }

    const db = new Database(join(dir, 'root', 'snapshotter', 'metadata.db'), { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const ids = (db.prepare('SELECT id FROM snapshots').pluck().all() as number[]).map(String).sort();
      const dirs = readdirSync(join(dir, 'root', 'snapshotter', 'snapshots')).sort();
      assert.deepEqual(dirs, ids, 'one directory per snapshot: orphans from the kill were deleted at start');
    } finally {
      db.close();
    }

    // The store keeps working where it stopped.
    await r.sn.prepare('after-crash', 'base');
    await r.sn.commit('after-crash-c', 'after-crash');
    assert.equal((await r.sn.stat('after-crash-c')).parent, 'base');
  } finally {
    r.sn.close();
    await r.proc.stop();
  }
});

test('SIGTERM stops cleanly; a restart lists the same snapshots', async () => {
  const dir = fresh();
  const d = await startDaemon(dir);
  await d.sn.prepare('a', '', { x: '1' });
  await d.sn.commit('c', 'a', { y: '2' });
  await d.sn.view('v', 'c');
  const before = (await d.sn.list()).infos;
  d.sn.close();
  await d.proc.stop('SIGTERM');
  assert.equal(d.proc.child.exitCode, 0);
  assert.match(d.log(), /"msg":"stopped"/);
  const r = await startDaemon(dir);
  assert.deepEqual((await r.sn.list()).infos, before);
  r.sn.close();
  await r.proc.stop();
});

test('metrics: upstream names at /metrics on metrics_address; no_prometheus turns it off', async () => {
  const port = await freePort();
  const dir = fresh();
  const d = await startDaemon(dir, { config: `metrics_address = "127.0.0.1:${port}"\n` });
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const body = await res.text();
    for (const name of [
      'stargz_fs_operation_duration_milliseconds',
      'stargz_fs_operation_duration_microseconds',
      'stargz_fs_operation_count',
      'stargz_fs_bytes_served',
      'stargz_fs_layer_fetched_size_bytes',
      'stargz_fs_layer_prefetch_size_bytes',
      'stargz_fs_layer_size_bytes',
      'stargz_ipfs_cache_hits_total',
      'stargz_ipfs_cache_misses_total',
      'stargz_ipfs_cache_evictions_total',
      'stargz_ipfs_request_duration_seconds',
      'stargz_ipfs_remote_snapshot_fallbacks_total',
      'process_cpu_user_seconds_total',
    ]) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.match(body, /^# TYPE stargz_fs_operation_count counter$/m);
    assert.match(body, /^# TYPE stargz_fs_bytes_served gauge$/m);
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  } finally {
    d.sn.close();
    await d.proc.stop();
  }

  const off = await startDaemon(fresh(), { config: `metrics_address = "127.0.0.1:${port}"\nno_prometheus = true\n` });
  try {
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
  } finally {
    off.sn.close();
    await off.proc.stop();
  }
});

const haveSystemdNotify = (() => {
  try {
    execFileSync('systemd-notify', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('sd_notify: READY=1 once the socket answers, STOPPING=1 on SIGTERM', { skip: !haveSystemdNotify && 'systemd-notify not installed' }, async () => {
  const dir = fresh();
  const notify = join(dir, 'notify.sock');
  // A stand-in for systemd's notification socket (Node has no unix datagram sockets).
  const receiver = startProc(
    'python3',
    ['-u', '-c', 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound")\nwhile True: print(s.recv(4096).decode().replace("\\n"," "))', notify],
    join(dir, 'notify.log'),
  );
  procs.push(receiver);
  const messages = () => readFileSync(receiver.logPath, 'utf8').trim().split('\n');
  await waitFor('receiver bound', 5000, () => (messages()[0] === 'bound' ? true : undefined));
  const d = await startDaemon(dir, { env: { NOTIFY_SOCKET: notify } });
  await waitFor('READY=1', 5000, () => (messages().some((m) => m.includes('READY=1')) ? true : undefined));
  assert.ok(messages().find((m) => m.includes('READY=1'))!.includes(`MAINPID=${d.proc.child.pid}`));
  d.sn.close();
  await d.proc.stop('SIGTERM');
  await waitFor('STOPPING=1', 5000, () => (messages().some((m) => m.includes('STOPPING=1')) ? true : undefined));
  await receiver.stop('SIGKILL');
});
