/**
 * Faults a real Kubo node cannot be made to produce, served by a FAULT-INJECTION FAKE:
 * a small local HTTP server that imitates Kubo's `cat`/`add` replies and then misbehaves
 * (a body that ends cleanly but short, too many bytes, a cut connection, an error trailer
 * after a full body, a non-Kubo endpoint), and a byte-level server that splits a reply
 * anywhere or garbles its framing. Everything Kubo can do itself is tested
 * against Kubo in ipfs-client.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { apiEndpoint } from '../src/ipfs/api-address.js';
import { IpfsClient } from '../src/ipfs/rpc-client.js';
import { createLogger } from '../src/log/logger.js';
import { isSgError } from '../src/errors.js';

const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy';
const data = randomBytes(300_000);

type Handler = (req: IncomingMessage, res: ServerResponse, attempt: number) => void;
let handler: Handler;
let attempts = 0;
let fake: Server;
let client: IpfsClient;
const logLines: string[] = [];

/** Kubo's streaming reply headers for `cat` of `length` bytes. */
function kuboHeaders(res: ServerResponse, length: number): void {
  res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Stream-Error', 'X-Content-Length': String(length), 'X-Stream-Output': '1' });
}

function rangeOf(req: IncomingMessage): [number, number] {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  return [Number(q.get('offset') ?? 0), Number(q.get('length') ?? data.length)];
}

before(async () => {
  fake = createServer((req, res) => {
    attempts++;
    req.resume();
    req.on('end', () => handler(req, res, attempts));
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  const { port } = fake.address() as AddressInfo;
  client = new IpfsClient({
    endpoint: apiEndpoint({ apiAddress: `http://127.0.0.1:${port}` }),
    requestTimeoutMs: 2000,
    retries: 2,
    retryBaseMs: 10,
    log: createLogger('debug', { write: (l: string) => logLines.push(l) }),
  });
});
after(async () => {
  client.close();
  fake.closeAllConnections();
  await new Promise((r) => fake.close(r));
});

function run(h: Handler): void {
  handler = h;
  attempts = 0;
}

test('fault injection: a body that ends cleanly but short is an error, not short data', async () => {
  run((req, res) => {
    const [offset, length] = rangeOf(req);
    kuboHeaders(res, length);
    res.end(data.subarray(offset, offset + length - 1000));
  });
  await assert.rejects(client.cat(CID, 100, 200_000), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /short/.test(e.message) && e.context.received === 199_000);
});

test('fault injection: more bytes than asked for is an error', async () => {
  run((req, res) => {
    const [offset, length] = rangeOf(req);
    kuboHeaders(res, length);
    res.end(data.subarray(offset, offset + length + 10));
  });
  await assert.rejects(client.cat(CID, 0, 1000), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /more bytes/.test(e.message));
});

test('fault injection: an error trailer after a complete body still fails the read', async () => {
  run((req, res) => {
    const [offset, length] = rangeOf(req);
    kuboHeaders(res, length);
    res.write(data.subarray(offset, offset + length));
    res.addTrailers({ 'X-Stream-Error': 'datastore checksum mismatch' });
    res.end();
  });
  await assert.rejects(client.cat(CID, 0, 5000), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /checksum mismatch/.test(e.message));
});

test('fault injection: a connection cut mid-body is retried as a whole; only complete bytes come back', async () => {
  run((req, res, attempt) => {
    const [offset, length] = rangeOf(req);
    kuboHeaders(res, length);
    if (attempt === 1) {
      res.write(data.subarray(offset, offset + length / 2), () => res.socket?.destroy());
    } else {
      res.end(data.subarray(offset, offset + length));
    }
  });
  const got = await client.cat(CID, 1000, 200_000);
  assert.ok(Buffer.from(got).equals(data.subarray(1000, 201_000)));
  assert.equal(attempts, 2);

  run((req, res) => {
    kuboHeaders(res, rangeOf(req)[1]);
    res.write(data.subarray(0, 10), () => res.socket?.destroy());
  });
  await assert.rejects(client.cat(CID, 0, 50_000), (e: unknown) => isSgError(e, 'UNAVAILABLE') && e.context.transient === true);
  assert.equal(attempts, 3, 'one attempt plus two retries');
});

test('fault injection: a 404 endpoint (not a Kubo RPC API) is UNAVAILABLE, never NOT_FOUND', async () => {
  run((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('404 page not found');
  });
  await assert.rejects(client.stat(CID), (e: unknown) => isSgError(e, 'UNAVAILABLE') && e.context.status === 404);
});

test('fault injection: add fails on an error trailer or an error object, never returns a CID', async () => {
  run((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', Trailer: 'X-Stream-Error', 'X-Chunked-Output': '1' });
    res.write('{"Name":"","Bytes":262144}\n');
    res.addTrailers({ 'X-Stream-Error': 'write: no space left on device' });
    res.end();
  });
  await assert.rejects(client.add(data), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /no space left/.test(e.message));
  run((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', Trailer: 'X-Stream-Error' });
    res.end(`{"Name":"file","Hash":"${CID}","Size":"300000"}\n{"Message":"pin failed","Code":0,"Type":"error"}\n`);
  });
  await assert.rejects(client.add(data), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /pin failed/.test(e.message));
  assert.equal(attempts, 1, 'add is not retried');
});

/** A byte-level server: the response exactly as given, written in pieces of `piece` bytes. */
async function rawServer(response: (path: string) => Buffer, piece: number): Promise<{ client: IpfsClient; close: () => Promise<void> }> {
  const server = netServer((sock) => {
    let head = '';
    sock.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const path = head.split(' ')[1] ?? '/';
      const out = response(path);
      let at = 0;
      const next = (): void => {
        if (at >= out.length) return void sock.end();
        sock.write(out.subarray(at, at + piece), () => setImmediate(next));
        at += piece;
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const c = new IpfsClient({ endpoint: apiEndpoint({ apiAddress: `http://127.0.0.1:${port}` }), requestTimeoutMs: 2000, retries: 0 });
  return { client: c, close: () => new Promise<void>((r) => (c.close(), server.close(() => r()))) };
}

/** A chunked `cat` reply, chunks of `size` bytes with a chunk extension, then `trailer`. */
function chunkedReply(path: string, size: number, trailer = ''): Buffer {
  const q = new URL(path, 'http://x').searchParams;
  const offset = Number(q.get('offset'));
  const body = data.subarray(offset, offset + Number(q.get('length')));
  const parts = [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Stream-Error\r\nX-Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n`)];
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size);
    parts.push(Buffer.from(`${c.length.toString(16)};ext=1\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0\r\n${trailer}\r\n`));
  return Buffer.concat(parts);
}

test('fault injection: a reply arriving a few bytes at a time (head, chunk sizes, data, trailers all split) reads right', async () => {
  for (const piece of [1, 7, 4096]) {
    const { client: c, close } = await rawServer((path) => chunkedReply(path, 1000), piece);
    try {
      const got = await c.cat(CID, 1234, piece === 1 ? 5000 : 100_000);
      assert.ok(Buffer.from(got).equals(data.subarray(1234, 1234 + got.length)), `pieces of ${piece}`);
      assert.equal(got.length, piece === 1 ? 5000 : 100_000);
    } finally {
      await close();
    }
  }
});

test('fault injection: an error trailer split across writes fails the read', async () => {
  const { client: c, close } = await rawServer((path) => chunkedReply(path, 3000, 'X-Stream-Error: block not found\r\n'), 5);
  try {
    await assert.rejects(c.cat(CID, 0, 10_000), (e: unknown) => isSgError(e, 'UNAVAILABLE') && /block not found/.test(e.message));
  } finally {
    await close();
  }
});

test('fault injection: a malformed chunk size is an error, not data', async () => {
  const { client: c, close } = await rawServer(() => Buffer.from('HTTP/1.1 200 OK\r\nX-Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n0123456789\r\n0\r\n\r\n'), 4096);
  try {
    await assert.rejects(c.cat(CID, 0, 10), (e: unknown) => isSgError(e, 'UNAVAILABLE'));
  } finally {
    await close();
  }
});
