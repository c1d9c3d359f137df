import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { waitFor } from './harness/proc.js';

const run = promisify(execFile);
const daemon = new URL('../src/cli/daemon.js', import.meta.url).pathname;
let scratch: string;

before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

async function runDaemon(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [daemon, ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('--version prints the version', async () => {
  const r = await runDaemon(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^stargz-ipfs-grpc \d+\.\d+\.\d+\n$/);
});

test('a key with the wrong type: one line naming file and key, exit 2', async () => {
  const cfg = join(scratch, 'typo.toml');
  writeFileSync(cfg, 'ipfs = true\n[fuse]\nattr_timeout = "one"\n');
  const r = await runDaemon(['--config', cfg, '--root', join(scratch, 'root-typo')]);
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.includes(cfg) && lines[0]!.includes('fuse.attr_timeout'), lines[0]);
  assert.ok(!existsSync(join(scratch, 'root-typo')), 'nothing created on a bad config');
});

test('an unknown --log-level is refused with exit 2', async () => {
  const r = await runDaemon(['--log-level', 'loud']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--log-level must be one of trace, debug, info, warn, error, fatal/);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`starts with config.example.toml, logs JSON, stops cleanly on ${signal}`, async () => {
    const root = join(scratch, `root-${signal}`);
    const example = new URL('../../config.example.toml', import.meta.url).pathname;
    const child = spawn(process.execPath, [daemon, '-config', example, '--root', root, '--log-level', 'debug', '--address', join(scratch, 'x.sock')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      await waitFor('daemon started', 10_000, () => (stderr.includes('daemon started') ? true : undefined));
      child.kill(signal);
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
    const records = stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; config?: { ipfs: boolean } });
    const loaded = records.find((r) => r.msg === 'config loaded');
    assert.equal(loaded?.level, 'debug');
    assert.equal(loaded?.config?.ipfs, true);
    assert.ok(records.some((r) => r.msg === 'stopped'));
    assert.deepEqual(readdirSync(root).sort(), ['cache', 'snapshotter'], 'state only under --root: chunk cache (IPFS mode) and snapshots');
  });
}
