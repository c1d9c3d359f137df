/**
 * One POST to the Kubo RPC API over node:http. Not fetch: undici does not expose HTTP
 * trailers, and Kubo reports a failure that happens after the 200 status line (a block
 * missing halfway through a `cat`, a failed `add`) only in the trailer `X-Stream-Error`.
 *
 * Each phase has its own timer, as in undici's client-h1: while the request body goes out
 * and while the response body comes in, no progress for `idleTimeoutMs` fails the call;
 * once the request is sent, headers must arrive within `headersTimeoutMs`. Time the
 * consumer spends holding a chunk does not count as the node being idle.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { SgError, type ErrorContext } from '../errors.js';

export interface PostOptions {
  /** A CallScope signal: its reason is always an SgError. */
  readonly signal: AbortSignal;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly context: ErrorContext;
  /** Streamed request body (multipart for `add`); none for the other calls. */
  readonly body?: AsyncIterable<Uint8Array | string>;
  readonly headers?: OutgoingHttpHeaders;
}

export interface RpcResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Body chunks as they arrive; throws at the end if the body was cut, stalled or carried an error trailer. */
  body(): AsyncGenerator<Buffer, void, undefined>;
  /**
   * The same, pushed to `onChunk` without a promise per chunk (the fast path: Kubo sends a
   * `cat` in chunks of a few KiB). An SgError thrown by `onChunk` fails the exchange.
   */
  consume(onChunk: (chunk: Buffer) => void): Promise<void>;
  /** Drops the connection when the body is not wanted. */
  discard(): void;
}

/** Keep-alive connection pools, one per scheme; a client owns one pair. */
export class Agents {
  readonly http = new HttpAgent({ keepAlive: true });
  readonly https = new HttpsAgent({ keepAlive: true });

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

export function postRpc(url: URL, agents: Agents, opts: PostOptions): Promise<RpcResponse> {
  opts.signal.throwIfAborted();
  return new Exchange(url, agents, opts).open();
}

/** Every socket-level failure: the node is down, restarting or moved. Worth a retry. */
export function connectionError(err: unknown, context: ErrorContext): SgError {
  if (err instanceof SgError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const why = err instanceof Error ? err.message : String(err);
  return new SgError('UNAVAILABLE', `IPFS API connection failed: ${why}`, { ...context, errno, transient: true }, { cause: err });
}

/** SgErrors marked transient (connection trouble, api file missing) may succeed on retry. */
export const isTransient = (err: unknown): boolean =>
  err instanceof SgError && err.code === 'UNAVAILABLE' && err.context.transient === true;

/** The failure Kubo reported in the X-Stream-Error trailer, if it did. */
export function streamErrorOf(trailer: string | undefined, context: ErrorContext): SgError | undefined {
  return trailer ? new SgError('UNAVAILABLE', `IPFS node reported an error mid-stream: ${trailer}`, context) : undefined;
}

/**
 * The timer of an exchange's current phase: no progress for its time fails the exchange,
 * except while the consumer holds a chunk (then the node is not to blame).
 */
export class PhaseTimer {
  /** Set while the consumer holds a chunk. */
  consumerHolds = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: ErrorContext,
    private readonly onTimeout: (err: SgError) => void,
  ) {}

  /** Arms the timer for a phase. */
  watch(ms: number, message: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.consumerHolds) {
        this.timer?.refresh();
        return;
      }
      this.onTimeout(new SgError('TIMEOUT', `${message} for ${ms} ms`, { ...this.context, timeoutMs: ms }));
    }, ms);
    this.timer.unref();
  }

  /** Progress: the phase's time starts again. */
  progress(): void {
    this.timer?.refresh();
  }

  /** Stops the timer for good (a later progress must not re-arm it). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

class Exchange implements RpcResponse {
  status = 0;
  headers: IncomingHttpHeaders = {};
  private readonly req: ClientRequest;
  private res: IncomingMessage | undefined;
  private failure: SgError | undefined;
  private finished = false;
  private readonly timer: PhaseTimer;
  private rejectOpen: ((err: SgError) => void) | undefined;

  constructor(
    url: URL,
    agents: Agents,
    private readonly o: PostOptions,
  ) {
    const https = url.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    this.req = send(url, { method: 'POST', agent: https ? agents.https : agents.http, headers: o.headers });
    this.timer = new PhaseTimer(o.context, (err) => this.fail(err));
  }

  open(): Promise<RpcResponse> {
    return new Promise((resolve, reject) => {
      this.rejectOpen = reject;
      const { req, o } = this;
      o.signal.addEventListener('abort', this.onAbort, { once: true });
      req.on('error', (err) => this.fail(connectionError(err, o.context)));
      req.on('finish', () => {
        if (!this.res) this.timer.watch(o.headersTimeoutMs, 'no response headers from IPFS node');
      });
      req.on('response', (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        this.timer.stop();
        resolve(this);
      });
      if (o.body) {
        this.timer.watch(o.idleTimeoutMs, 'IPFS node stopped reading the request body');
        pipeline(this.uploadProgress(o.body), req).catch((err: unknown) => this.fail(connectionError(err, o.context)));
      } else {
        req.end();
      }
    });
  }

  async *body(): AsyncGenerator<Buffer, void, undefined> {
    const res = this.res;
    if (!res) throw new Error('body() before the response arrived');
    this.timer.watch(this.o.idleTimeoutMs, 'no bytes from IPFS node');
    try {
      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          this.timer.consumerHolds = true;
          yield chunk;
          this.timer.consumerHolds = false;
          this.timer.progress();
        }
      } catch (err) {
        throw this.failure ?? connectionError(err, this.o.context);
      }
      this.checkEnd(res);
    } finally {
      this.discard();
    }
  }

  consume(onChunk: (chunk: Buffer) => void): Promise<void> {
    const res = this.res;
    if (!res) throw new Error('consume() before the response arrived');
    this.timer.watch(this.o.idleTimeoutMs, 'no bytes from IPFS node');
    return new Promise<void>((resolve, reject) => {
      const settle = (err?: unknown): void => {
        this.discard();
        if (err === undefined) resolve();
        else reject(err);
      };
      res.on('data', (chunk: Buffer) => {
        this.timer.progress();
        try {
          onChunk(chunk);
        } catch (err) {
          this.fail(connectionError(err, this.o.context));
        }
      });
      res.on('end', () => {
        try {
          this.checkEnd(res);
          settle();
        } catch (err) {
          settle(err);
        }
      });
      res.on('error', (err) => settle(this.failure ?? connectionError(err, this.o.context)));
      res.on('close', () => settle(this.failure ?? connectionError(new Error('connection closed before the response ended'), this.o.context)));
    });
  }

  discard(): void {
    if (this.finished) return;
    this.finished = true;
    this.timer.stop();
    this.o.signal.removeEventListener('abort', this.onAbort);
    // A response left unread must not go back to the keep-alive pool mid-body.
    if (!this.res?.complete) this.req.destroy();
  }

  private readonly onAbort = (): void => this.fail(this.o.signal.reason as SgError);

  /** A clean end: all of the body arrived and no error trailer came after it. */
  private checkEnd(res: IncomingMessage): void {
    if (this.failure) throw this.failure;
    if (!res.complete) throw connectionError(new Error('connection closed before the response ended'), this.o.context);
    const streamError = streamErrorOf(res.trailers['x-stream-error'], this.o.context);
    if (streamError) throw streamError;
  }

  private fail(err: SgError): void {
    if (this.failure || this.finished) return;
    this.failure = err;
    this.timer.stop();
    this.req.destroy(err);
    this.res?.destroy(err);
    this.rejectOpen?.(err);
  }

  private async *uploadProgress(src: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array | string> {
    try {
      for await (const chunk of src) {
        this.timer.progress();
        yield chunk;
      }
    } catch (err) {
      throw new SgError('IO', 'cannot read the content to add', this.o.context, { cause: err });
    }
  }
}
