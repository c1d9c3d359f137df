/**
 * A POST without a request body over a plain socket, for `cat`, the call that moves the
 * bytes. The socket reads into one reused buffer (net's `onread`) and the response is parsed
 * here, so a body costs one copy out of that buffer. node:http makes a Buffer, a copy and a
 * stream event per 64 KiB read: receiving 256 MiB took 0.52–0.60 CPU-seconds through it and
 * 0.37–0.40 this way (a cold read through a mount spends ~1.1 in all).
 *
 * Same contract as the node:http exchange (RpcResponse): phase timers (headers, then no
 * progress for `idleTimeoutMs`), the X-Stream-Error trailer, abort, connection errors marked
 * transient. One connection per call (`Connection: close`, so the node closes it first and
 * the closed socket's wait state stays on its side).
 */
import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { SgError } from '../errors.js';
import { PhaseTimer, connectionError, streamErrorOf, type PostOptions, type RpcResponse } from './http-call.js';

/** Bytes read from the socket at once. */
const READ_BYTES = 256 << 10;
/** Longest status line plus headers (or trailers) accepted. */
const MAX_HEAD = 64 << 10;
/** Body bytes body() may queue before the socket is paused. */
const MAX_QUEUED = 1 << 20;

export function postRaw(url: URL, opts: PostOptions): Promise<RpcResponse> {
  opts.signal.throwIfAborted();
  return new RawExchange(url, opts).open();
}

type Phase = 'head' | 'size' | 'data' | 'data-end' | 'trailers' | 'plain' | 'done';

class RawExchange implements RpcResponse {
  status = 0;
  headers: IncomingHttpHeaders = {};
  private readonly trailers: Record<string, string> = {};
  private readonly socket: Socket;
  private phase: Phase = 'head';
  private head = '';
  /** Body bytes left in the current chunk, or (without chunked encoding) in the body; -1: until close. */
  private left = 0;
  private failure: SgError | undefined;
  private finished = false;
  private readonly timer: PhaseTimer;
  private onHeaders: ((err?: SgError) => void) | undefined;
  /** Where body bytes go: set by consume() or body(). Until then they are queued. */
  private sink: ((bytes: Buffer) => void) | undefined;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private wake: (() => void) | undefined;
  private ended = false;

  constructor(
    private readonly url: URL,
    private readonly o: PostOptions,
  ) {
    this.timer = new PhaseTimer(o.context, (err) => this.fail(err));
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    this.socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 80),
      onread: { buffer, callback: (n: number, buf: Uint8Array) => this.onRead(Buffer.from(buf.buffer, buf.byteOffset, n)) },
    });
  }

  open(): Promise<RpcResponse> {
    const { o, socket, url } = this;
    return new Promise<RpcResponse>((resolve, reject) => {
      this.onHeaders = (err) => {
        this.onHeaders = undefined;
        if (err) reject(err);
        else resolve(this);
      };
      o.signal.addEventListener('abort', this.onAbort, { once: true });
      socket.on('error', (err) => this.fail(connectionError(err, o.context)));
      socket.on('close', () => this.onClose());
      socket.once('connect', () => {
        const extra = Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${String(v)}\r\n`).join('');
        socket.write(`POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 0\r\nConnection: close\r\n${extra}\r\n`);
        this.timer.watch(o.headersTimeoutMs, 'no response headers from IPFS node');
      });
      this.timer.watch(o.headersTimeoutMs, 'no response headers from IPFS node');
    });
  }

  consume(onChunk: (chunk: Buffer) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.timer.watch(this.o.idleTimeoutMs, 'no bytes from IPFS node');
      this.sink = (bytes) => {
        try {
          onChunk(bytes);
        } catch (err) {
          // Also when the whole body had arrived before the consumer saw it.
          this.failure ??= connectionError(err, this.o.context);
          this.timer.stop();
          this.socket.destroy();
        }
      };
      const flush = this.queued;
      this.queued = [];
      this.queuedBytes = 0;
      for (const b of flush) if (!this.failure) this.sink(b);
      this.wake = () => {
        if (this.failure) reject(this.failure);
        else if (this.ended) resolve();
      };
      this.socket.resume();
      this.wake();
    }).finally(() => this.discard());
  }

  async *body(): AsyncGenerator<Buffer, void, undefined> {
    this.timer.watch(this.o.idleTimeoutMs, 'no bytes from IPFS node');
    // Views of the read buffer do not outlive the read: body() keeps copies.
    this.sink = (bytes) => {
      this.queued.push(Buffer.from(bytes));
      this.queuedBytes += bytes.length;
    };
    try {
      for (;;) {
        const next = this.queued.shift();
        if (next) {
          this.queuedBytes -= next.length;
          if (this.queuedBytes < MAX_QUEUED && !this.finished) this.socket.resume();
          this.timer.consumerHolds = true;
          yield next;
          this.timer.consumerHolds = false;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.ended) return;
        this.socket.resume();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.discard();
    }
  }

  discard(): void {
    if (this.finished) return;
    this.finished = true;
    this.timer.stop();
    this.o.signal.removeEventListener('abort', this.onAbort);
    this.socket.destroy();
  }

  private readonly onAbort = (): void => this.fail(this.o.signal.reason as SgError);

  private onRead(chunk: Buffer): boolean {
    if (this.failure || this.phase === 'done') return true;
    this.timer.progress();
    try {
      this.parse(chunk);
    } catch (err) {
      this.fail(err instanceof SgError ? err : new SgError('UNAVAILABLE', `IPFS API sent a malformed response: ${String(err)}`, this.o.context));
      return false;
    }
    this.wake?.();
    // body() holds the socket while its queue is long; consume() never does.
    return this.queuedBytes < MAX_QUEUED;
  }

  private parse(b: Buffer): void {
    let p = 0;
    while (p < b.length) {
      switch (this.phase) {
        case 'head':
        case 'trailers': {
          const end = b.indexOf(10, p);
          const upTo = end < 0 ? b.length : end + 1;
          this.head += b.toString('latin1', p, upTo);
          p = upTo;
          if (this.head.length > MAX_HEAD) throw new SgError('UNAVAILABLE', 'IPFS API response head too large', this.o.context);
          if (end >= 0) this.line();
          break;
        }
        case 'size': {
          const end = b.indexOf(10, p);
          const upTo = end < 0 ? b.length : end + 1;
          this.head += b.toString('latin1', p, upTo);
          p = upTo;
          if (this.head.length > 1024) throw new Error('chunk size line too long');
          if (end < 0) break;
          const size = Number.parseInt(this.head.trim().split(';')[0]!, 16);
          this.head = '';
          if (!Number.isSafeInteger(size) || size < 0) throw new Error('bad chunk size');
          if (size === 0) this.phase = 'trailers';
          else {
            this.left = size;
            this.phase = 'data';
          }
          break;
        }
        case 'data':
        case 'plain': {
          const take = this.left < 0 ? b.length - p : Math.min(this.left, b.length - p);
          this.deliver(b.subarray(p, p + take));
          p += take;
          if (this.left >= 0) this.left -= take;
          if (this.left === 0) {
            if (this.phase === 'plain') this.end();
            else this.phase = 'data-end';
          }
          break;
        }
        case 'data-end': {
          const end = b.indexOf(10, p);
          if (end < 0) {
            p = b.length;
            break;
          }
          p = end + 1;
          this.phase = 'size';
          break;
        }
        case 'done':
          return;
      }
    }
  }

  /** One complete line of the status line and headers, or of the trailers. */
  private line(): void {
    const text = this.head.replace(/\r?\n$/, '');
    this.head = '';
    if (this.phase === 'trailers') {
      if (text === '') return this.end();
      const colon = text.indexOf(':');
      if (colon > 0) this.trailers[text.slice(0, colon).trim().toLowerCase()] = text.slice(colon + 1).trim();
      return;
    }
    if (this.status === 0) {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m) throw new Error(`bad status line ${JSON.stringify(text.slice(0, 80))}`);
      this.status = Number(m[1]);
      return;
    }
    if (text !== '') {
      const colon = text.indexOf(':');
      if (colon <= 0) throw new Error('bad header line');
      const name = text.slice(0, colon).trim().toLowerCase();
      const value = text.slice(colon + 1).trim();
      const had = this.headers[name];
      this.headers[name] = had === undefined ? value : `${String(had)}, ${value}`;
      return;
    }
    // The end of the headers.
    if (this.status === 100) {
      this.status = 0;
      this.headers = {};
      return;
    }
    const chunked = /chunked/i.test(String(this.headers['transfer-encoding'] ?? ''));
    const length = Number(this.headers['content-length']);
    if (chunked) this.phase = 'size';
    else if (Number.isSafeInteger(length) && length >= 0) {
      this.left = length;
      this.phase = 'plain';
    } else {
      this.left = -1;
      this.phase = 'plain';
    }
    this.timer.stop();
    // Until a consumer is there, body bytes wait in the queue and the socket pauses.
    this.socket.pause();
    this.onHeaders?.();
    if (this.phase === 'plain' && this.left === 0) this.end();
  }

  private deliver(bytes: Buffer): void {
    if (bytes.length === 0 || this.failure) return;
    if (this.sink) this.sink(bytes);
    else {
      this.queued.push(Buffer.from(bytes));
      this.queuedBytes += bytes.length;
    }
  }

  private end(): void {
    this.phase = 'done';
    const streamError = streamErrorOf(this.trailers['x-stream-error'], this.o.context);
    if (streamError) {
      this.fail(streamError);
      return;
    }
    this.ended = true;
    this.timer.stop();
    this.wake?.();
  }

  private onClose(): void {
    if (this.ended || this.failure || this.finished) return;
    // A body read until the close ends cleanly there; anything else was cut.
    if (this.phase === 'plain' && this.left < 0) return this.end();
    this.fail(connectionError(new Error('connection closed before the response ended'), this.o.context));
  }

  private fail(err: SgError): void {
    if (this.failure || this.ended) return;
    this.failure = err;
    this.timer.stop();
    this.socket.destroy();
    this.onHeaders?.(err);
    this.wake?.();
  }
}
