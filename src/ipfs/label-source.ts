/**
 * A remote snapshot's labels → the IPFS blob of its layer. containerd forwards the layer
 * descriptor's `urls` as `containerd.io/snapshot/remote/urls` (comma-joined, spec §1.5);
 * the first `ipfs://` entry names the blob, as upstream's GetCID does.
 */
import { SgError } from '../errors.js';
import { IpfsBlobSource } from '../source/ipfs-source.js';
import type { IpfsClient } from './rpc-client.js';
import { cidFromUrls } from './cid.js';

export const REMOTE_URLS_LABEL = 'containerd.io/snapshot/remote/urls';

export function cidFromLabels(labels: Readonly<Record<string, string>>): string {
  const urls = labels[REMOTE_URLS_LABEL];
  const cid = urls === undefined ? undefined : cidFromUrls(urls.split(','));
  if (!cid) throw new SgError('NOT_FOUND', 'no CID is recorded for this layer (no ipfs:// entry in its urls)', { label: REMOTE_URLS_LABEL, urls: urls ?? '' });
  return cid;
}

/** The blob, with its size already resolved (`files/stat`, re-reading the API address). */
export async function ipfsSourceFromLabels(labels: Readonly<Record<string, string>>, client: IpfsClient, signal?: AbortSignal): Promise<IpfsBlobSource> {
  const source = new IpfsBlobSource(cidFromLabels(labels), client);
  await source.size(signal);
  return source;
}
