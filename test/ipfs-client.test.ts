/**
 * The IPFS client and blob source against a real Kubo node: ranged reads, errors Kubo
 * really produces (absent CID, a block missing mid-stream), a stalled node (SIGSTOP),
 * cancellation, a node killed mid-stream and restarted on another port.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { startKubo, type KuboNode } from './harness/kubo.js';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsClient, type IpfsClientOptions } from '../src/ipfs/rpc-client.js';
import { IpfsBlobSource } from '../src/source/ipfs-source.js';
import { createLogger } from '../src/log/logger.js';
import { isSgError, type ErrorCode } from '../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let scratch: string;
let kubo: KuboNode;
let small: Buffer;
let smallCid: string;
let big: Buffer;
let bigCid: string;
const logLines: string[] = [];
const clients: IpfsClient[] = [];

function newClient(opts: Partial<IpfsClientOptions> = {}): IpfsClient {
  const client = new IpfsClient({
    endpoint: apiEndpoint({ env: { IPFS_PATH: kubo.ipfsPath } }),
    requestTimeoutMs: 5000,
    fetchTimeoutMs: 20_000,
    retryBaseMs: 50,
    log: createLogger('debug', { write: (l: string) => logLines.push(l) }),
    ...opts,
  });
  clients.push(client);
  return client;
}

/** Pid of this test's Kubo daemon (the harness does not expose it): found by its IPFS_PATH. */
function kuboPid(): number {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'latin1').split('\0');
      const env = readFileSync(`/proc/${ent}/environ`, 'latin1').split('\0');
      if (cmd[0] === kubo.bin && cmd[1] === 'daemon' && env.includes(`IPFS_PATH=${kubo.ipfsPath}`)) return Number(ent);
    } catch {
      // process gone or not ours to read
    }
  }
  throw new Error('kubo daemon pid not found');
}

/** Runs `fn` while the node is frozen: connections are accepted by the kernel, nothing answers. */
async function whileFrozen<T>(fn: () => Promise<T>): Promise<T> {
  const pid = kuboPid();
  process.kill(pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

const hasCode = (code: ErrorCode) => (e: unknown) => isSgError(e, code);

async function elapsed<T>(p: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const t = performance.now();
  const [result] = await Promise.allSettled([p]);
  return { ms: performance.now() - t, result: result! };
}

before(async () => {
  reapStale();
  scratch = makeScratch();
  kubo = await startKubo(scratch);
  small = randomBytes(3 * MiB + 12_345);
  smallCid = kubo.add(small);
  big = randomBytes(64 * MiB);
  bigCid = kubo.add(big);
});
after(async () => {
  for (const c of clients) c.close();
  await kubo?.stop();
  destroyScratch(scratch);
});

test('ranged reads equal the original bytes at many offsets, across 256 KiB block boundaries', async () => {
  const source = new IpfsBlobSource(smallCid, newClient());
  assert.equal(await source.size(), small.length);
  const block = 256 * KiB;
  const ranges: [number, number][] = [
    [0, 1],
    [0, small.length],
    [block - 1, 2],
    [block, block],
    [block - 4, 3 * block + 8],
    [5 * block + 17, 1],
    [small.length - 1, 1],
    [small.length - 5, 5],
    [1_000_000, 1_500_000],
  ];
  for (let i = 0; i < 40; i++) {
    const offset = randomInt(small.length);
    ranges.push([offset, randomInt(small.length - offset + 1)]);
  }
  for (const [offset, length] of ranges) {
    const got = await source.readRange(offset, length);
    assert.equal(got.length, length, `length at ${offset}+${length}`);
    assert.ok(Buffer.from(got).equals(small.subarray(offset, offset + length)), `bytes differ at ${offset}+${length}`);
  }
  assert.equal((await source.readRange(0, 0)).length, 0);
  assert.equal((await source.readRange(small.length, 0)).length, 0);
  const catLines = logLines.filter((l) => l.includes('"msg":"ipfs cat"'));
  assert.ok(catLines.length >= ranges.length, 'every range request is logged at debug');
  assert.match(catLines[0]!, /"cid":"[a-z0-9]+","offset":\d+,"length":\d+,"ms":\d+/);
});

test('a range beyond the end is INVALID_ARGUMENT, from the source and from the node', async () => {
  const client = newClient();
  const source = new IpfsBlobSource(smallCid, client);
  await assert.rejects(source.readRange(small.length - 5, 6), hasCode('INVALID_ARGUMENT'));
  await assert.rejects(source.readRange(small.length + 1, 0), hasCode('INVALID_ARGUMENT'));
  await assert.rejects(source.readRange(-1, 2), hasCode('INVALID_ARGUMENT'));
  // The client alone relies on Kubo's X-Content-Length: it says how much is really there.
  await assert.rejects(client.cat(smallCid, small.length - 10, 100), (e: unknown) => isSgError(e, 'INVALID_ARGUMENT') && e.context.available === 10);
});

test('an absent CID fails at once with NOT_FOUND', async () => {
  const absent = kubo.cli(['add', '-Q', '--only-hash', '--cid-version=1', '--raw-leaves'], randomBytes(1000)).toString().trim();
  const client = newClient();
  const { ms, result } = await elapsed(new IpfsBlobSource(absent, client).size());
  assert.equal(result.status, 'rejected');
  assert.ok(isSgError((result as PromiseRejectedResult).reason, 'NOT_FOUND'), String((result as PromiseRejectedResult).reason));
  assert.ok(ms < 2000, `took ${ms} ms`);
  await assert.rejects(client.cat(absent, 0, 10), (e: unknown) => isSgError(e, 'NOT_FOUND') && e.context.cid === absent && typeof e.context.api === 'string');
});

test('add streams content as multipart and returns the CID `ipfs add` gives', async () => {
  const client = newClient();
  const content = randomBytes(5 * MiB + 3);
  const expected = kubo.cli(['add', '-Q', '--only-hash', '--cid-version=1', '--raw-leaves'], content).toString().trim();
  const chunks = function* () {
    for (let o = 0; o < content.length; o += 100 * KiB) yield content.subarray(o, o + 100 * KiB);
  };
  assert.equal(await client.add(Readable.from(chunks())), expected);
  const file = join(scratch, 'to-add.bin');
  writeFileSync(file, content.subarray(0, 777_777));
  const fileCid = await client.addFile(file);
  assert.deepEqual(Buffer.from(await client.cat(fileCid, 0, 777_777)), content.subarray(0, 777_777));
  const pins = kubo.cli(['pin', 'ls', '--type=recursive', '-q']).toString();
  assert.ok(pins.includes(fileCid), 'added content is pinned');
  await assert.rejects(client.addFile(join(scratch, 'no-such-file')), hasCode('IO'));
});

test("a block missing mid-stream: Kubo's X-Stream-Error trailer fails the read, nothing partial is returned", async () => {
  const content = randomBytes(2_000_000);
  const cid = kubo.cli(['add', '-Q', '--cid-version=1', '--raw-leaves', '--pin=false'], content).toString().trim();
  const leaves = kubo.cli(['refs', cid]).toString().trim().split('\n');
  kubo.cli(['block', 'rm', leaves[3]!]);
  const client = newClient();
  const before = logLines.length;
  await assert.rejects(client.cat(cid, 0, content.length), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /mid-stream/.test(e.message));
  assert.ok(!logLines.slice(before).some((l) => l.includes('retrying')), 'a node-reported error is not retried');
  let received = 0;
  await assert.rejects(async () => {
    for await (const chunk of client.catStream(cid)) received += chunk.length;
  }, hasCode('UNAVAILABLE'));
  assert.ok(received > 0 && received < content.length, `stream delivered ${received} bytes before failing`);
});

test('a node that stops sending mid-body fails the read within the idle timeout', async () => {
  const client = newClient({ requestTimeoutMs: 800, idleTimeoutMs: 800 });
  const stream = client.catStream(bigCid);
  const first = await stream.next();
  assert.ok(!first.done && first.value.length > 0);
  await whileFrozen(async () => {
    const { ms, result } = await elapsed(
      (async () => {
        for await (const chunk of stream) assert.ok(chunk.length > 0);
      })(),
    );
    assert.equal(result.status, 'rejected');
    assert.ok(isSgError((result as PromiseRejectedResult).reason, 'TIMEOUT'), String((result as PromiseRejectedResult).reason));
    assert.ok(ms < 3000, `took ${ms} ms`);
  });
});

test('a node that never answers (a CID it keeps searching for) fails within the request timeout', async () => {
  const client = newClient({ requestTimeoutMs: 700 });
  await whileFrozen(async () => {
    const { ms, result } = await elapsed(client.stat(smallCid));
    assert.ok(isSgError((result as PromiseRejectedResult).reason, 'TIMEOUT'), String((result as PromiseRejectedResult).reason));
    assert.ok(ms >= 650 && ms < 2500, `took ${ms} ms`);
  });
});

test('an AbortSignal cancels a cat promptly, also one already aborted', async () => {
  const client = newClient();
  await whileFrozen(async () => {
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 100);
    const { ms, result } = await elapsed(client.cat(bigCid, 0, 8 * MiB, ctrl.signal));
    assert.ok(isSgError((result as PromiseRejectedResult).reason, 'ABORTED'), String((result as PromiseRejectedResult).reason));
    assert.ok(ms < 1000, `took ${ms} ms (fetch timeout is 20 s)`);
  });
  await assert.rejects(client.cat(bigCid, 0, 10, AbortSignal.abort()), hasCode('ABORTED'));
  const expired = AbortSignal.timeout(1);
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(client.cat(bigCid, 0, 10, expired), hasCode('TIMEOUT'), "a caller's expired deadline reads as TIMEOUT");
  // The connection pool is still healthy after cancelled calls.
  assert.deepEqual(Buffer.from(await client.cat(bigCid, 5, 10)), big.subarray(5, 15));
});

test('node killed mid-stream: the read fails within the timeout, then recovers once the node is back on a new port', async () => {
  const client = newClient({ requestTimeoutMs: 2000, retries: 3 });
  const source = new IpfsBlobSource(bigCid, client);
  assert.equal(await source.size(), big.length);
  const oldApi = kubo.apiUrl;
  let received = 0;
  const t = performance.now();
  await assert.rejects(async () => {
    for await (const chunk of client.catStream(bigCid)) {
      received += chunk.length;
      if (received >= MiB && received - chunk.length < MiB) process.kill(kuboPid(), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 2));
    }
  }, hasCode('UNAVAILABLE'));
  assert.ok(received < big.length, 'the stream never ends cleanly with part of the blob');
  // While it is down, reads fail fast (connection refused, retried, then UNAVAILABLE).
  await assert.rejects(source.readRange(0, MiB), hasCode('UNAVAILABLE'));
  assert.ok(performance.now() - t < 5000, 'failed within the timeout');

  await kubo.stop();
  await kubo.start();
  assert.notEqual(kubo.apiUrl, oldApi, 'restart moved the API to a new port');
  const got = await source.readRange(10 * MiB, 4 * MiB);
  assert.ok(Buffer.from(got).equals(big.subarray(10 * MiB, 14 * MiB)), 'same source reads again after the restart');
});

test('api file moved to another port: the next resolve (stat) uses it without a failed attempt', async () => {
  const client = newClient();
  assert.equal((await client.stat(smallCid)).size, small.length);
  const oldApi = kubo.apiUrl;
  await kubo.stop();
  await kubo.start();
  assert.notEqual(kubo.apiUrl, oldApi);
  const before = logLines.length;
  const source = new IpfsBlobSource(smallCid, client);
  assert.equal(await source.size(), small.length);
  assert.ok(!logLines.slice(before).some((l) => l.includes('retrying')), 'stat re-read the api file up front');
  assert.ok(Buffer.from(await source.readRange(0, 1000)).equals(small.subarray(0, 1000)));
});
