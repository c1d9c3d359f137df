/**
 * A gRPC client transport over node:http2, just what talking to containerd needs: unary
 * calls, a server stream (content Read) and a bidirectional stream (content Write), with
 * metadata, deadlines and cancellation. Every `rpull` starts a process that talks to
 * containerd, and loading @grpc/grpc-js took about 50 ms of that start-up here; node:http2
 * is built in. The daemon's gRPC server stays on grpc-js.
 *
 * Wire format (gRPC over HTTP/2): POST /<service>/<method>, content-type application/grpc,
 * each message prefixed by a compressed flag (always 0 here) and a 4-byte big-endian length;
 * the status comes in trailers (`grpc-status`, `grpc-message`), or in the response headers
 * of a trailers-only reply.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';

/** gRPC status codes (the numbers are the protocol's). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
} as const;

const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));
export const statusName = (code: number): string => STATUS_NAMES.get(code) ?? `code ${code}`;

/** A call that ended with a status other than OK. */
export class GrpcError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${statusName(code)}: ${details}`);
  }
}

const SESSION_MEMORY_MB = 256;
/** Largest message accepted from the server (containerd can send a whole small blob). */
const MAX_MESSAGE = 16 << 20;

export type Metadata = Readonly<Record<string, string>>;

export interface DuplexCall {
  /** Resolves once the stream takes more (HTTP/2 flow control: containerd reads at its pace). */
  write(message: Buffer): Promise<void>;
  /** No more messages from us. */
  end(): void;
  cancel(): void;
  /** The server's messages; throws GrpcError when the call ends with a non-OK status. */
  messages(): AsyncIterator<Buffer>;
}

export class GrpcChannel {
  private session: ClientHttp2Session | undefined;

  /** `target`: `unix:/path`, a socket path, or `host:port`. */
  constructor(readonly target: string) {}

  async unary(path: string, request: Buffer, md: Metadata, timeoutMs: number): Promise<Buffer> {
    const stream = this.open(path, md, timeoutMs);
    stream.end(frame(request));
    let reply: Buffer | undefined;
    for await (const m of readMessages(stream, timeoutMs)) reply ??= m;
    if (!reply) throw new GrpcError(Status.INTERNAL, 'no response message');
    return reply;
  }

  /** One request, a stream of replies; `cancel` ends it early. */
  serverStream(path: string, request: Buffer, md: Metadata): { messages: AsyncIterable<Buffer>; cancel(): void } {
    const stream = this.open(path, md);
    stream.end(frame(request));
    return { messages: readMessages(stream), cancel: () => cancel(stream) };
  }

  duplex(path: string, md: Metadata): DuplexCall {
    const stream = this.open(path, md);
    const replies = readMessages(stream);
    return {
      write: (m) =>
        stream.write(frame(m))
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              // Closed instead of drained: the reply iterator reports why.
              const done = () => (stream.off('drain', done), stream.off('close', done), resolve());
              stream.on('drain', done);
              stream.on('close', done);
            }),
      end: () => void stream.end(),
      cancel: () => cancel(stream),
      messages: () => replies[Symbol.asyncIterator](),
    };
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private open(path: string, md: Metadata, timeoutMs?: number): ClientHttp2Stream {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...md,
    };
    if (timeoutMs !== undefined) headers['grpc-timeout'] = `${Math.max(1, Math.min(99_999_999, Math.ceil(timeoutMs)))}m`;
    return this.connection().request(headers);
  }

  /** The HTTP/2 connection, made on first use and again after it closed. */
  private connection(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const socketPath = this.target.startsWith('unix:') ? this.target.slice(5) : this.target.startsWith('/') ? this.target : undefined;
    // Writes of several layers at once each keep a few MiB in flight: well over node:http2's
    // default 10 MB per session, past which it resets streams.
    const options = { maxSessionMemory: SESSION_MEMORY_MB };
    const session = socketPath
      ? http2.connect('http://localhost', { ...options, createConnection: () => net.connect(socketPath) })
      : http2.connect(`http://${this.target}`, options);
    // Errors reach the streams; a session that failed is replaced on the next call.
    session.on('error', () => undefined);
    session.on('close', () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function cancel(stream: ClientHttp2Stream): void {
  if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
}

/**
 * The messages of a response, then its status: a non-OK status (or a broken connection,
 * as UNAVAILABLE) is thrown after the messages before it. `timeoutMs` bounds the whole call.
 */
function readMessages(stream: ClientHttp2Stream, timeoutMs?: number): AsyncGenerator<Buffer> {
  // Listening from the start: a generator's body would only run once it is first read,
  // after a quick reply's headers and trailers had been emitted.
  const reply: Reply = { httpStatus: 0, timedOut: false };
  const fromHeaders = (h: IncomingHttpHeaders) => {
    if (h['grpc-status'] !== undefined) reply.status = { code: Number(h['grpc-status']), details: decodeMessage(h['grpc-message']) };
  };
  stream.on('response', (h) => {
    reply.httpStatus = Number(h[':status'] ?? 200);
    fromHeaders(h);
  });
  stream.on('trailers', fromHeaders);
  // Errors are read through the iterator below; without a listener one would be uncaught meanwhile.
  stream.on('error', () => undefined);
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => ((reply.timedOut = true), cancel(stream)), timeoutMs);
  return messagesOf(stream, reply, timer);
}

/** What the stream's events told so far. */
interface Reply {
  /** 0 until the response headers arrive. */
  httpStatus: number;
  status?: { code: number; details: string };
  timedOut: boolean;
}

async function* messagesOf(stream: ClientHttp2Stream, reply: Reply, timer: NodeJS.Timeout | undefined): AsyncGenerator<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        if (pending[0] !== 0) throw new GrpcError(Status.INTERNAL, 'compressed message received, none was asked for');
        const len = pending.readUInt32BE(1);
        if (len > MAX_MESSAGE) throw new GrpcError(Status.OUT_OF_RANGE, `message of ${len} bytes is over ${MAX_MESSAGE}`);
        if (pending.length < 5 + len) break;
        yield pending.subarray(5, 5 + len);
        pending = pending.subarray(5 + len);
      }
    }
  } catch (err) {
    if (err instanceof GrpcError) throw err;
    if (reply.timedOut) throw new GrpcError(Status.DEADLINE_EXCEEDED, 'deadline exceeded');
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_HTTP2_STREAM_ERROR' && stream.rstCode === http2.constants.NGHTTP2_CANCEL) throw new GrpcError(Status.CANCELLED, 'cancelled');
    const why = err instanceof Error ? err.message : String(err);
    // Before any reply: as grpc-js words it, so that callers can tell "cannot reach" from a
    // server's UNAVAILABLE. After: the connection broke mid-call.
    throw new GrpcError(Status.UNAVAILABLE, reply.httpStatus === 0 ? `No connection established: ${why}` : `connection lost: ${why}`);
  } finally {
    if (timer) clearTimeout(timer);
  }
  if (reply.timedOut) throw new GrpcError(Status.DEADLINE_EXCEEDED, 'deadline exceeded');
  const { status, httpStatus } = reply;
  if (!status) {
    if (stream.rstCode === http2.constants.NGHTTP2_CANCEL) throw new GrpcError(Status.CANCELLED, 'cancelled');
    // The stream ended without trailers: reset, the connection went away, or no gRPC server.
    const reset = stream.rstCode ? `, stream reset with HTTP/2 code ${stream.rstCode}` : '';
    throw new GrpcError(Status.UNAVAILABLE, httpStatus === 0 ? `No connection established: no response${reset}` : `connection lost: the reply ended without a gRPC status (HTTP ${httpStatus}${reset})`);
  }
  if (pending.length > 0) throw new GrpcError(Status.INTERNAL, 'response ended inside a message');
  if (status.code !== Status.OK) throw new GrpcError(status.code, status.details);
}

/** grpc-message is percent-encoded. */
function decodeMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(',') : (v ?? '');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
