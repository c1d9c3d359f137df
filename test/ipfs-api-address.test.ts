import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { apiEndpoint, apiFilePath, apiUrlFromMultiaddr, parseApiAddress, readApiFile } from '../src/ipfs/api-address.js';
import { isSgError } from '../src/errors.js';

let scratch: string;
before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

test('every supported multiaddr form becomes an http(s) URL', () => {
  const cases: [string, string][] = [
    ['/ip4/127.0.0.1/tcp/5001', 'http://127.0.0.1:5001'],
    ['/ip4/10.1.2.3/tcp/80', 'http://10.1.2.3:80'],
    ['/ip6/::1/tcp/5001', 'http://[::1]:5001'],
    ['/ip6/fe80::1:2/tcp/5002', 'http://[fe80::1:2]:5002'],
    ['/dns4/localhost/tcp/5001', 'http://localhost:5001'],
    ['/dns6/localhost/tcp/5001', 'http://localhost:5001'],
    ['/dns/ipfs.example.org/tcp/443/https', 'https://ipfs.example.org:443'],
    ['/dns4/node-1.internal/tcp/5001/http', 'http://node-1.internal:5001'],
    ['/ip4/127.0.0.1/tcp/5001/tls/http', 'https://127.0.0.1:5001'],
    ['  /ip4/127.0.0.1/tcp/5001\n', 'http://127.0.0.1:5001'],
  ];
  for (const [ma, url] of cases) assert.equal(apiUrlFromMultiaddr(ma), url, ma);
});

test('garbage and unsupported multiaddrs are CONFIG errors naming the address', () => {
  for (const ma of [
    '',
    'garbage',
    '127.0.0.1:5001',
    '/ip4/999.0.0.1/tcp/5001',
    '/ip4/127.0.0.1',
    '/ip4/127.0.0.1/udp/5001',
    '/ip4/127.0.0.1/tcp/0',
    '/ip4/127.0.0.1/tcp/70000',
    '/ip4/127.0.0.1/tcp/5001/p2p/QmFoo',
    '/ip6/127.0.0.1/tcp/5001',
    '/dns4/bad_name!/tcp/5001',
    '/unix/run/ipfs.sock',
  ]) {
    assert.throws(() => apiUrlFromMultiaddr(ma), (e: unknown) => isSgError(e, 'CONFIG') && e.context.multiaddr === ma.trim(), ma);
  }
});

test('a configured api_address may be a URL or a multiaddr', () => {
  assert.equal(parseApiAddress('http://127.0.0.1:5001/'), 'http://127.0.0.1:5001');
  assert.equal(parseApiAddress('https://ipfs.example.org'), 'https://ipfs.example.org');
  assert.equal(parseApiAddress('/ip6/::1/tcp/5001'), 'http://[::1]:5001');
  assert.throws(() => parseApiAddress('ftp://x'), (e: unknown) => isSgError(e, 'CONFIG'));
  assert.throws(() => parseApiAddress('not a url'), (e: unknown) => isSgError(e, 'CONFIG'));
});

test('api file path: $IPFS_PATH first, else $HOME/.ipfs', () => {
  assert.equal(apiFilePath({ IPFS_PATH: '/srv/ipfs', HOME: '/root' }), '/srv/ipfs/api');
  assert.equal(apiFilePath({ HOME: '/home/u' }), '/home/u/.ipfs/api');
  assert.equal(apiFilePath({ IPFS_PATH: '', HOME: '/home/u' }), '/home/u/.ipfs/api');
});

test('missing api file: UNAVAILABLE naming the file; unparsable: CONFIG naming the file', async () => {
  const repo = join(scratch, 'repo-missing');
  await assert.rejects(readApiFile(join(repo, 'api')), (e: unknown) => isSgError(e, 'UNAVAILABLE') && e.context.file === join(repo, 'api'));
  const garbage = join(scratch, 'repo-garbage');
  mkdirSync(garbage);
  writeFileSync(join(garbage, 'api'), 'hello world\n');
  await assert.rejects(
    readApiFile(join(garbage, 'api')),
    (e: unknown) => isSgError(e, 'CONFIG') && e.context.file === join(garbage, 'api') && e.context.content === 'hello world',
  );
});

test('the endpoint re-reads the api file on every call; config override wins', async () => {
  const repo = join(scratch, 'repo-moving');
  mkdirSync(repo);
  const endpoint = apiEndpoint({ env: { IPFS_PATH: repo } });
  writeFileSync(join(repo, 'api'), '/ip4/127.0.0.1/tcp/4001');
  assert.equal(await endpoint(), 'http://127.0.0.1:4001');
  writeFileSync(join(repo, 'api'), '/ip4/127.0.0.1/tcp/4002');
  assert.equal(await endpoint(), 'http://127.0.0.1:4002');
  const home = join(scratch, 'home');
  mkdirSync(join(home, '.ipfs'), { recursive: true });
  writeFileSync(join(home, '.ipfs', 'api'), '/dns4/localhost/tcp/4003');
  assert.equal(await apiEndpoint({ env: { HOME: home } })(), 'http://localhost:4003');
  assert.equal(await apiEndpoint({ apiAddress: '/ip4/127.0.0.1/tcp/9', env: { IPFS_PATH: repo } })(), 'http://127.0.0.1:9');
});
