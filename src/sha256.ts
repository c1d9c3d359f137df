/** SHA-256 for verifying chunks, without holding the event loop that serves FUSE. */
import { createHash } from 'node:crypto';
import { sha256OffThread } from './native/chunk-decode.js';

/** Below this a hash is cheaper on the calling thread than a trip to the thread pool. */
const OFF_THREAD_BYTES = 256 << 10;

/** Hex sha256 of `bytes`; big inputs are hashed on libuv's pool, in place. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (bytes.length < OFF_THREAD_BYTES) return createHash('sha256').update(bytes).digest('hex');
  return sha256OffThread(bytes);
}
