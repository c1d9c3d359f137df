/**
 * Puts blobs where a push leaves them: IPFS (CIDv1, raw leaves, pinned) always, and
 * containerd's content store for blobs the push made. Every byte sent to IPFS is hashed on
 * the way and checked against the descriptor, so a CID is never recorded for other bytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { SgError } from '../errors.js';
import type { ContentStore, Labels } from '../containerd/content.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import type { PushListener } from './events.js';
import type { BlobKind } from './media-types.js';

export interface BlobRef {
  readonly digest: string;
  readonly size: number;
}

export interface Published extends BlobRef {
  readonly cid: string;
}

/** Read size for files streamed to IPFS and containerd. */
const FILE_READ = 1 << 20;

export class Publisher {
  private added = 0;
  private planned = 0;

  constructor(
    private readonly content: ContentStore,
    private readonly ipfs: IpfsClient,
    private readonly emit: PushListener,
    private readonly signal?: AbortSignal,
  ) {}

  /** A blob containerd already holds, streamed from its content store to IPFS. */
  addStored(kind: BlobKind, blob: BlobRef, signal = this.signal): Promise<Published> {
    return this.toIpfs(kind, blob, this.content.read(blob.digest, { length: blob.size, signal }), signal);
  }

  /** A file the push made (a converted layer): into containerd with `labels` and to IPFS, side by side. */
  addFile(kind: BlobKind, path: string, blob: BlobRef, labels: Labels, signal = this.signal): Promise<Published> {
    return together(signal, async (s) => {
      const [published] = await Promise.all([this.toIpfs(kind, blob, fileChunks(path, s), s), this.store(blob, fileChunks(path, s), labels, s)]);
      return published;
    });
  }

  /** A document the push wrote (manifest, index, config): into containerd with `labels`, and to IPFS. */
  async addDocument(kind: BlobKind, bytes: Buffer, labels: Labels): Promise<Published> {
    const blob = { digest: sha256(bytes), size: bytes.length };
    await this.store(blob, bytes, labels, this.signal);
    return this.toIpfs(kind, blob, bytes, this.signal);
  }

  private async store(blob: BlobRef, data: Uint8Array | AsyncIterable<Uint8Array>, labels: Labels, signal: AbortSignal | undefined): Promise<void> {
    await this.content.write(`stargz-ipfs-push-${blob.digest}`, blob, data, labels, signal);
  }

  private async toIpfs(kind: BlobKind, blob: BlobRef, data: Uint8Array | AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<Published> {
    this.planned += blob.size;
    this.report();
    const [algorithm, hex] = blob.digest.split(':') as [string, string];
    const hash = createHash(algorithm);
    let size = 0;
    const seen = (chunk: Uint8Array) => {
      hash.update(chunk);
      size += chunk.length;
      this.added += chunk.length;
      this.report();
    };
    const cid = await this.ipfs.add(tap(data, seen), signal);
    if (size !== blob.size || hash.digest('hex') !== hex) {
      throw new SgError('CORRUPT', 'blob bytes differ from their descriptor', { digest: blob.digest, size: blob.size, read: size, cid });
    }
    this.emit({ type: 'added', kind, digest: blob.digest, size: blob.size, cid });
    return { ...blob, cid };
  }

  private report(): void {
    this.emit({ type: 'bytes', added: this.added, planned: this.planned });
  }
}

/** `data` passed through, each chunk shown to `fn` on the way. */
async function* tap(data: Uint8Array | AsyncIterable<Uint8Array>, fn: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of data instanceof Uint8Array ? [data] : data) {
    fn(chunk);
    yield chunk;
  }
}

/** The file's bytes, opened only once iterated: a write containerd refuses (AlreadyExists) opens nothing. */
async function* fileChunks(path: string, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  yield* createReadStream(path, { highWaterMark: FILE_READ, signal });
}

/**
 * Runs parallel work under one signal: when any part fails, the others are aborted
 * rather than left streaming a layer nobody will use.
 */
export async function together<T>(signal: AbortSignal | undefined, work: (s: AbortSignal) => Promise<T>): Promise<T> {
  const failed = new AbortController();
  const s = signal ? AbortSignal.any([signal, failed.signal]) : failed.signal;
  try {
    return await work(s);
  } catch (err) {
    failed.abort(err);
    throw err;
  }
}

export const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
