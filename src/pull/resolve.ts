/**
 * The first step of a pull, kept light (no gRPC): resolve the image through IPFS. A CLI
 * starts it before loading the containerd client, so the two overlap.
 */
import { performance } from 'node:perf_hooks';
import { SgError, isSgError } from '../errors.js';
import { resolveImage, type ResolvedImage } from '../ipfs/oci-resolver.js';
import type { Platform } from '../ipfs/oci.js';
import type { IpfsClient } from '../ipfs/rpc-client.js';

export interface Resolved {
  readonly image: ResolvedImage;
  readonly ms: number;
}

export async function resolveForPull(ipfs: IpfsClient, ref: string, platform?: Platform, signal?: AbortSignal): Promise<Resolved> {
  const t0 = performance.now();
  try {
    const image = await resolveImage(ipfs, ref, { platform, signal });
    return { image, ms: performance.now() - t0 };
  } catch (err) {
    throw ipfsDown(err);
  }
}

/** A connection failure to the IPFS node, said plainly. */
export function ipfsDown(err: unknown): unknown {
  if (!isSgError(err) || (err.code !== 'UNAVAILABLE' && err.code !== 'TIMEOUT')) return err;
  if (err.message.includes('is the IPFS daemon running?')) return err;
  return new SgError(err.code, `cannot reach the IPFS node: ${err.message}; is the IPFS daemon running?`, err.context, { cause: err });
}
