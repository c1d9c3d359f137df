/** What a push reports while it works; the CLI turns these into progress lines. */
import type { BlobKind } from './media-types.js';

export type PushEvent =
  /** The image tree is loaded and every blob is present. */
  | { readonly type: 'start'; readonly image: string; readonly layers: number; readonly platforms: string }
  /** A layer's work begins: eStargz conversion, or publishing it as it is. */
  | { readonly type: 'layer'; readonly index: number; readonly total: number; readonly digest: string; readonly action: 'convert' | 'keep' }
  | { readonly type: 'layer-done'; readonly index: number; readonly total: number; readonly digest: string; readonly size: number }
  /** Running totals of bytes sent to IPFS, and of bytes known so far to be sent. */
  | { readonly type: 'bytes'; readonly added: number; readonly planned: number }
  | { readonly type: 'added'; readonly kind: BlobKind | 'root'; readonly digest: string; readonly size: number; readonly cid: string }
  | { readonly type: 'stored'; readonly image: string };

export type PushListener = (e: PushEvent) => void;
