import { open, stat } from 'node:fs/promises';
import { SgError } from '../errors.js';
import type { BlobSource } from './blob-source.js';

/** A blob in a local file: for `layer mount --blob`, the estargz CLI and tests. */
export class FileBlobSource implements BlobSource {
  readonly describe: string;
  private cachedSize: number | undefined;

  constructor(private readonly path: string) {
    this.describe = path;
  }

  async size(): Promise<number> {
    if (this.cachedSize === undefined) {
      try {
        this.cachedSize = (await stat(this.path)).size;
      } catch (err) {
        throw new SgError('NOT_FOUND', 'cannot stat blob file', { path: this.path }, { cause: err });
      }
    }
    return this.cachedSize;
  }

  async readRange(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const size = await this.size();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new SgError('INVALID_ARGUMENT', 'range outside blob', { path: this.path, offset, length, size });
    }
    const buf = Buffer.allocUnsafe(length);
    const fh = await open(this.path, 'r');
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new SgError('IO', 'blob file ended early', { path: this.path, offset: offset + done });
        done += bytesRead;
      }
    } finally {
      await fh.close();
    }
    return buf;
  }
}
