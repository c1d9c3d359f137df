/**
 * The gRPC transport's own faults, which a real containerd cannot be made to produce on
 * demand: FAULT INJECTION servers (plain node:http2 servers on a unix socket, named as
 * such) that never answer, answer with a trailers-only error, split and join messages
 * across frames, or drop the connection mid-call. Its normal use is tested against the
 * real containerd (containerd-client, e2e-rpull).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2, { type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { makeScratch, destroyScratch, reapStale } from './harness/scratch.js';
import { GrpcChannel, GrpcError, Status } from '../src/containerd/grpc-h2.js';

let scratch: string;
before(() => {
  reapStale();
  scratch = makeScratch();
});
after(() => destroyScratch(scratch));

let servers = 0;
async function faultServer(onStream: (s: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<{ path: string; server: Http2Server }> {
  const path = join(scratch, `fault-${servers++}.sock`);
  const server = http2.createServer();
  server.on('stream', onStream);
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server };
}

/** A gRPC message as it goes on the wire: flag 0, 4-byte big-endian length, bytes. */
function framed(msg: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

test('fault injection: a server that never answers fails the call at its deadline (DEADLINE_EXCEEDED), not later', async () => {
  const { path, server } = await faultServer(() => undefined);
  const ch = new GrpcChannel(path);
  try {
    const started = Date.now();
    await assert.rejects(ch.unary('/x.Y/Z', Buffer.from('req'), {}, 300), (err: unknown) => err instanceof GrpcError && err.code === Status.DEADLINE_EXCEEDED);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 3000, `took ${took} ms`);
  } finally {
    ch.close();
    server.close();
  }
});

test('fault injection: a trailers-only error reply is that status with its percent-decoded message; metadata reaches the server', async () => {
  let seen: http2.IncomingHttpHeaders = {};
  const { path, server } = await faultServer((s, headers) => {
    seen = headers;
    s.on('data', () => undefined);
    s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(Status.NOT_FOUND), 'grpc-message': encodeURIComponent('blob sha256:ab: not found') }, { endStream: true });
  });
  const ch = new GrpcChannel(path);
  try {
    await assert.rejects(
      ch.unary('/x.Y/Z', Buffer.from('req'), { 'containerd-namespace': 'ns1' }, 5000),
      (err: unknown) => err instanceof GrpcError && err.code === Status.NOT_FOUND && err.details === 'blob sha256:ab: not found',
    );
    assert.equal(seen['containerd-namespace'], 'ns1');
    assert.equal(seen['content-type'], 'application/grpc');
    assert.match(String(seen['grpc-timeout']), /^\d+m$/);
  } finally {
    ch.close();
    server.close();
  }
});

test('fault injection: messages split across frames and joined in one frame all come out whole, then the OK status ends the stream', async () => {
  const msgs = [Buffer.alloc(70_000, 1), Buffer.from('two'), Buffer.alloc(0), Buffer.alloc(200_000, 7)];
  const { path, server } = await faultServer((s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    const all = Buffer.concat(msgs.map(framed));
    // Odd-sized pieces: headers and bodies cut anywhere.
    for (let at = 0; at < all.length; at += 7_777) s.write(all.subarray(at, Math.min(all.length, at + 7_777)));
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end();
  });
  const ch = new GrpcChannel(path);
  try {
    const got: Buffer[] = [];
    for await (const m of ch.serverStream('/x.Y/Read', Buffer.from('req'), {}).messages) got.push(Buffer.from(m));
    assert.deepEqual(got, msgs);
  } finally {
    ch.close();
    server.close();
  }
});

test('fault injection: a connection dropped mid-stream is UNAVAILABLE after the messages that arrived, never a clean end', async () => {
  const { path, server } = await faultServer((s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    s.write(framed(Buffer.from('first')));
    setTimeout(() => s.session?.destroy(), 50);
  });
  const ch = new GrpcChannel(path);
  try {
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of ch.serverStream('/x.Y/Read', Buffer.from('req'), {}).messages) got.push(m.toString());
      })(),
      (err: unknown) => err instanceof GrpcError && err.code === Status.UNAVAILABLE && /^connection lost/.test(err.details),
    );
    assert.deepEqual(got, ['first']);
    // The channel connects again for the next call.
    await assert.rejects(ch.unary('/x.Y/Z', Buffer.from('r'), {}, 200), (err: unknown) => err instanceof GrpcError);
  } finally {
    ch.close();
    server.close();
  }
});

test('a socket nobody listens on is UNAVAILABLE "No connection established"', async () => {
  const ch = new GrpcChannel(join(scratch, 'nobody.sock'));
  try {
    await assert.rejects(ch.unary('/x.Y/Z', Buffer.from('r'), {}, 2000), (err: unknown) => err instanceof GrpcError && err.code === Status.UNAVAILABLE && /^No connection established/.test(err.details));
  } finally {
    ch.close();
  }
});
