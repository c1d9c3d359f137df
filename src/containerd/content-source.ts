/**
 * A blob in containerd's content store as a BlobSource, so the eStargz reader can check a
 * layer's footer and TOC in place (a few ranged reads) without copying the layer out.
 */
import type { BlobSource } from '../source/blob-source.js';
import type { ContentStore } from './content.js';
import { SgError } from '../errors.js';

export class ContentBlobSource implements BlobSource {
  readonly describe: string;

  constructor(
    private readonly content: ContentStore,
    private readonly digest: string,
    private readonly blobSize: number,
  ) {
    this.describe = `containerd content ${digest}`;
  }

  async size(): Promise<number> {
    return this.blobSize;
  }

  async readRange(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.blobSize) {
      throw new SgError('INVALID_ARGUMENT', 'range goes beyond the end of the blob', { blob: this.describe, offset, length, size: this.blobSize });
    }
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    for await (const b of this.content.read(this.digest, { offset, length, signal })) {
      (b as Buffer).copy(out, got);
      got += (b as Buffer).length;
    }
    return out;
  }
}
