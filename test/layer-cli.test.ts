import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeScratch, destroyScratch, reapStale, mountsUnder } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';

const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
const corpusDir = new URL('../../../shared/testdata/estargz/', import.meta.url).pathname;
let scratch: string;
let kubo: KuboNode;

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
});
after(async () => {
  await kubo?.stop();
  destroyScratch(scratch);
});

test('`stargz-ipfs layer mount --cid` serves the layer until SIGTERM, then unmounts and exits 0', async () => {
  const cid = kubo.add(readFileSync(join(corpusDir, 'blobs/files-default.estargz.tar.gz')));
  const dir = join(scratch, 'mnt');
  const child = spawn(
    process.execPath,
    [cli, 'layer', 'mount', '--cid', `ipfs://${cid}`, '--toc-digest', 'sha256:40e9f265a0c57cce66107c101bb2cbc5ed4b7455b40e59e9396b095e55dea18e', '--root', join(scratch, 'root'), dir],
    { env: { ...process.env, IPFS_PATH: kubo.ipfsPath }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (c) => reject(new Error(`exited ${c} before mounting`)));
    });
    assert.equal(line, `mounted ${dir}`);
    // Read from this process (async): the mount is served by the child.
    const { readdir } = await import('node:fs/promises');
    assert.ok((await readdir(dir)).length > 0);
    assert.equal(mountsUnder(dir).length, 1);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.deepEqual(mountsUnder(dir), []);
  } finally {
    child.kill('SIGKILL');
  }
});

test('`stargz-ipfs layer mount` refuses a blob that is not eStargz with one clear line', async () => {
  const cid = kubo.add(Buffer.from('definitely not an estargz blob'.repeat(10)));
  const child = spawn(process.execPath, [cli, 'layer', 'mount', '--cid', cid, '--root', join(scratch, 'root'), join(scratch, 'mnt2')], {
    env: { ...process.env, IPFS_PATH: kubo.ipfsPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.match(stderr, /no eStargz footer/);
  assert.deepEqual(mountsUnder(join(scratch, 'mnt2')), []);
});
