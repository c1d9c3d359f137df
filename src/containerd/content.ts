/**
 * containerd's content store over gRPC: Info, Update (labels), Read as a byte stream,
 * and Write, the bidirectional stream protocol of content/proxy: STAT opens (or resumes)
 * the ingest `ref` and declares size and digest; WRITEs append at the offset the server
 * reports; COMMIT checks size and digest and stores the blob with its labels. A blob the
 * store already has is refused with AlreadyExists, which for us is success.
 */
import { addAbortSignal, Readable } from 'node:stream';
import { SgError } from '../errors.js';
import { metadata, toSgError, unary, type Session } from './call.js';
import type { ServiceClient } from './proto.js';

export type Labels = Readonly<Record<string, string>>;

export interface ContentInfo {
  readonly digest: string;
  readonly size: number;
  readonly labels: Labels;
}

export interface ReadOptions {
  readonly offset?: number;
  /** Bytes wanted; omitted = to the end. A stream that ends short fails with CORRUPT. */
  readonly length?: number;
  readonly signal?: AbortSignal;
}

export interface WriteResult {
  /** False when the store already had the blob (its labels are then updated instead). */
  readonly written: boolean;
}

interface WireInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}
interface WireWriteResponse {
  offset: number;
  digest: string;
}

/**
 * Data per WRITE message. Few large messages, not one per incoming chunk: every WRITE costs a
 * reply from containerd, whose server accepts messages of up to 16 MiB.
 */
export const WRITE_PIECE = 4 << 20;
/** WRITEs sent before waiting for the oldest reply: keeps the socket busy, bounds memory. */
const WRITE_WINDOW = 3;

export class ContentStore {
  constructor(
    private readonly client: ServiceClient,
    private readonly session: Session,
  ) {}

  async info(digest: string): Promise<ContentInfo> {
    const res = await unary<{ info: WireInfo }>(this.client, 'Info', { digest }, this.session, 'content.Info', { digest });
    return fromWire(res.info);
  }

  /** Sets (or, with an empty value, removes) only the labels named. */
  async updateLabels(digest: string, labels: Labels): Promise<ContentInfo> {
    const paths = Object.keys(labels).map((k) => `labels.${k}`);
    const req = { info: { digest, labels }, update_mask: { paths } };
    const res = await unary<{ info: WireInfo }>(this.client, 'Update', req, this.session, 'content.Update', { digest });
    return fromWire(res.info);
  }

  /** The blob's bytes as a stream with backpressure: nothing is buffered beyond one message. */
  read(digest: string, opts: ReadOptions = {}): Readable {
    const { offset = 0, length } = opts;
    const s = this.session;
    const m = this.client.methods.Read!;
    const call = this.client.channel.serverStream(m.path, m.requestSerialize({ digest, offset, size: length ?? 0 }), metadata(s));
    async function* bytes(): AsyncGenerator<Buffer> {
      let got = 0;
      try {
        for await (const raw of call.messages) {
          const msg = m.responseDeserialize(raw) as { data: Buffer };
          got += msg.data.length;
          if (msg.data.length > 0) yield msg.data;
        }
      } catch (err) {
        throw toSgError(err, 'content.Read', s, { digest, offset });
      } finally {
        // A reader that stopped early (or was aborted) ends the call.
        call.cancel();
      }
      if (length !== undefined && got !== length) {
        throw new SgError('CORRUPT', 'containerd content.Read ended early', { digest, offset, length, got, namespace: s.namespace });
      }
    }
    const stream = Readable.from(bytes(), { objectMode: false });
    return opts.signal ? addAbortSignal(opts.signal, stream) : stream;
  }

  /** A small blob whole (manifests, configs, indexes), refusing anything over `maxBytes`. */
  async readBlob(digest: string, size: number, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    if (size > maxBytes) throw new SgError('TOO_LARGE', 'blob is too large to read whole', { digest, size, maxBytes });
    const parts: Buffer[] = [];
    for await (const b of this.read(digest, { length: size, signal })) parts.push(b as Buffer);
    return Buffer.concat(parts, size);
  }

  /**
   * Stores `data` (exactly `expected.size` bytes hashing to `expected.digest`) with `labels`.
   * `ref` names the ingest; a stale one left by a crash is truncated and rewritten.
   */
  async write(
    ref: string,
    expected: { readonly digest: string; readonly size: number },
    data: Uint8Array | AsyncIterable<Uint8Array>,
    labels: Labels = {},
    signal?: AbortSignal,
  ): Promise<WriteResult> {
    const s = this.session;
    const ctx = { ref, digest: expected.digest, size: expected.size };
    const m = this.client.methods.Write!;
    const call = this.client.channel.duplex(m.path, metadata(s));
    const replies = call.messages();
    const reply = async (): Promise<WireWriteResponse> => {
      const r = await replies.next();
      if (r.done) throw new SgError('IO', 'containerd closed the content write stream early', ctx);
      return m.responseDeserialize(r.value) as WireWriteResponse;
    };
    const send = (req: object): Promise<void> => call.write(m.requestSerialize(req));
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await send({ action: 'STAT', ref, total: expected.size, expected: expected.digest });
      await reply();
      let offset = 0;
      const inFlight: number[] = [];
      const settle = async () => {
        const want = inFlight.shift()!;
        const got = (await reply()).offset;
        if (got !== want) throw new SgError('IO', 'containerd stored a write short', { ...ctx, offset: want, stored: got });
      };
      for await (const piece of pieces(data, expected.size)) {
        offset += piece.length;
        if (offset > expected.size) throw new SgError('INVALID_ARGUMENT', 'content is longer than its descriptor', ctx);
        await send({ action: 'WRITE', ref, offset: offset - piece.length, data: piece });
        inFlight.push(offset);
        if (inFlight.length >= WRITE_WINDOW) await settle();
      }
      while (inFlight.length > 0) await settle();
      await send({ action: 'COMMIT', ref, offset, total: expected.size, expected: expected.digest, labels });
      const done = await reply();
      if (done.offset !== expected.size || done.digest !== expected.digest) {
        throw new SgError('CORRUPT', 'containerd committed other content than expected', { ...ctx, stored: done.offset, storedDigest: done.digest });
      }
      call.end();
      // The server ends the call after COMMIT; wait for its final status.
      while (!(await replies.next()).done);
      return { written: true };
    } catch (err) {
      call.cancel();
      const e = signal?.aborted ? new SgError('ABORTED', 'content write aborted', ctx) : toSgError(err, 'content.Write', s, ctx);
      if (e.code !== 'ALREADY_EXISTS') throw e;
      if (Object.keys(labels).length > 0) await this.updateLabels(expected.digest, labels);
      return { written: false };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function fromWire(w: WireInfo): ContentInfo {
  return { digest: w.digest, size: w.size, labels: w.labels ?? {} };
}

/**
 * `data` in pieces of WRITE_PIECE bytes (the last one shorter). A buffer goes out as views
 * of it (no copies); a stream's small chunks (a network stream's few KiB) are gathered into
 * one buffer per piece, except that a whole piece arriving with nothing gathered is a view.
 * `size` (the bytes expected) only sizes the last buffer: more data than that still comes out.
 */
export async function* pieces(data: Uint8Array | AsyncIterable<Uint8Array>, size = Infinity): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    for (let at = 0; at < data.length; at += WRITE_PIECE) yield data.subarray(at, Math.min(data.length, at + WRITE_PIECE));
    return;
  }
  let piece: Buffer | undefined;
  let fill = 0;
  let sent = 0;
  for await (const chunk of data) {
    let at = 0;
    while (at < chunk.length) {
      if (fill === 0 && chunk.length - at >= WRITE_PIECE) {
        yield chunk.subarray(at, at + WRITE_PIECE);
        at += WRITE_PIECE;
        sent += WRITE_PIECE;
        continue;
      }
      // A fresh buffer each time: the one yielded may still be queued in the gRPC stream.
      piece ??= Buffer.allocUnsafe(size - sent > 0 ? Math.min(WRITE_PIECE, size - sent) : WRITE_PIECE);
      const n = Math.min(piece.length - fill, chunk.length - at);
      piece.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === piece.length) {
        yield piece;
        sent += fill;
        piece = undefined;
        fill = 0;
      }
    }
  }
  if (fill > 0) yield piece!.subarray(0, fill);
}
