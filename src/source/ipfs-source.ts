import { SgError } from '../errors.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';
import type { BlobSource, RangeOptions } from './blob-source.js';

/**
 * A blob in IPFS, read with ranged `cat`. The size comes from `files/stat` (the layer
 * resolve), as upstream; the manifest's size is not trusted for it (spec §1.6).
 */
export class IpfsBlobSource implements BlobSource {
  readonly describe: string;
  private knownSize: number | undefined;

  constructor(
    readonly cid: string,
    private readonly client: IpfsClient,
  ) {
    this.describe = `ipfs://${cid}`;
  }

  async size(signal?: AbortSignal): Promise<number> {
    if (this.knownSize === undefined) {
      const st = await this.client.stat(this.cid, signal);
      if (st.type !== 'file') throw new SgError('INVALID_ARGUMENT', 'CID is not a file blob', { cid: this.cid, type: st.type });
      this.knownSize = st.size;
    }
    return this.knownSize;
  }

  async readRange(offset: number, length: number, signal?: AbortSignal, opts?: RangeOptions): Promise<Uint8Array> {
    const size = await this.size(signal);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new SgError('INVALID_ARGUMENT', 'range outside blob', { cid: this.cid, offset, length, size });
    }
    return this.client.cat(this.cid, offset, length, signal, opts);
  }
}
