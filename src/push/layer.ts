/**
 * One layer of a push: published as it is (`--estargz=false`, or a layer that already is a
 * valid eStargz), or converted to eStargz with our writer. The conversion streams the layer
 * out of containerd into the writer, which spools to a temporary file; the file then goes
 * to containerd and IPFS side by side. Memory stays bounded whatever the layer size.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pipe, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { SgError, isSgError, type ErrorCode } from '../errors.js';
import type { ContentStore } from '../containerd/content.js';
import { ContentBlobSource } from '../containerd/content-source.js';
import { buildEstargz, openEstargz, FOOTER_SIZE } from '../estargz/index.js';
import { together, type Publisher } from './publish.js';
import type { Desc } from './tree.js';
import { compressionOf, estargzMediaType, toOci } from './media-types.js';

export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';
/** containerd's label for a compressed blob's diffID. */
const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

export interface LayerEnv {
  readonly content: ContentStore;
  readonly publisher: Publisher;
  readonly estargz: boolean;
  readonly prioritizedFiles: readonly string[];
  /** Private work dir of this push: spooled tars and converted blobs. */
  readonly workDir: string;
  readonly signal?: AbortSignal;
}

export interface LayerResult {
  /** The new descriptor: OCI media type, `urls: ["ipfs://<CID>"]`, eStargz annotations. */
  readonly descriptor: Record<string, unknown>;
  /** The layer's new diffID when its uncompressed content changed. */
  readonly diffID?: string;
  /** Prioritized files this layer does not have. */
  readonly missed: readonly string[];
}

/** Errors that mean "not a usable eStargz": such a layer is converted instead. */
const NOT_USABLE: ReadonlySet<ErrorCode> = new Set(['NOT_ESTARGZ', 'CORRUPT', 'TOC_DIGEST_MISMATCH', 'HOSTILE_TOC', 'INVALID_ARGUMENT', 'TOO_LARGE']);

/** What `pushLayer` will do, known before it starts (for progress). */
export async function layerAction(env: LayerEnv, layer: Desc): Promise<{ action: 'convert' | 'keep'; tocDigest?: string }> {
  if (!env.estargz) return { action: 'keep' };
  const compression = compressionOf(layer.d.mediaType);
  if (compression === 'zstd' || compression === 'unknown') {
    throw new SgError('INVALID_ARGUMENT', 'layer is neither gzip nor plain tar: eStargz conversion cannot read it (use --estargz=false)', {
      digest: layer.d.digest,
      mediaType: layer.d.mediaType,
    });
  }
  const tocDigest = compression === 'gzip' ? await existingEstargz(env, layer) : undefined;
  return tocDigest === undefined ? { action: 'convert' } : { action: 'keep', tocDigest };
}

export async function pushLayer(env: LayerEnv, layer: Desc, plan: { action: 'convert' | 'keep'; tocDigest?: string }): Promise<LayerResult> {
  const { raw, d } = layer;
  if (plan.action === 'keep') {
    const published = await env.publisher.addStored('layer', d);
    const annotations = plan.tocDigest === undefined ? d.annotations : { ...d.annotations, ...(await estargzAnnotations(env, layer, plan.tocDigest)) };
    return { descriptor: { ...raw, mediaType: toOci(d.mediaType), urls: [`ipfs://${published.cid}`], ...(annotations && { annotations }) }, missed: [] };
  }
  const out = join(env.workDir, `${d.digest.replace(':', '-')}.esgz`);
  try {
    const built = await buildEstargz(tarStream(env, layer), out, {
      prioritizedFiles: env.prioritizedFiles,
      allowMissingPrioritized: true,
      tmpDir: env.workDir,
      signal: env.signal,
    });
    const blob = { digest: built.blobDigest, size: built.size };
    const [published, uncompressed] = await together(env.signal, (signal) =>
      Promise.all([env.publisher.addFile('layer', out, blob, { [UNCOMPRESSED_LABEL]: built.diffID }, signal), inflatedSize(createReadStream(out, { signal }))]),
    );
    return {
      descriptor: {
        ...raw,
        mediaType: estargzMediaType(d.mediaType),
        digest: blob.digest,
        size: blob.size,
        urls: [`ipfs://${published.cid}`],
        annotations: { ...d.annotations, [TOC_DIGEST_ANNOTATION]: built.tocDigest, [UNCOMPRESSED_SIZE_ANNOTATION]: String(uncompressed) },
      },
      diffID: built.diffID,
      missed: built.missedPrioritizedFiles,
    };
  } finally {
    await rm(out, { force: true });
  }
}

/** The layer's TOC digest when it already is a valid eStargz (footer, TOC, annotation if any). */
async function existingEstargz(env: LayerEnv, layer: Desc): Promise<string | undefined> {
  const { digest, size, annotations } = layer.d;
  if (size < FOOTER_SIZE) return undefined;
  try {
    const source = new ContentBlobSource(env.content, digest, size);
    return (await openEstargz(source, { tocDigest: annotations?.[TOC_DIGEST_ANNOTATION], signal: env.signal })).tocDigest;
  } catch (err) {
    if (isSgError(err) && NOT_USABLE.has(err.code)) return undefined;
    throw err;
  }
}

/** Annotations of a kept eStargz layer; the uncompressed size is measured when not recorded. */
async function estargzAnnotations(env: LayerEnv, layer: Desc, tocDigest: string): Promise<Record<string, string>> {
  const recorded = layer.d.annotations?.[UNCOMPRESSED_SIZE_ANNOTATION];
  const size = recorded !== undefined && /^\d+$/.test(recorded) ? recorded : String(await inflatedSize(env.content.read(layer.d.digest, { signal: env.signal })));
  return { [TOC_DIGEST_ANNOTATION]: tocDigest, [UNCOMPRESSED_SIZE_ANNOTATION]: size };
}

/**
 * The layer as a plain tar stream. Inflated here rather than by the writer: it would spool
 * the gzip stream to disk first and inflate it from there, in zlib's small default chunks.
 */
function tarStream(env: LayerEnv, layer: Desc): Readable {
  const blob = env.content.read(layer.d.digest, { length: layer.d.size, signal: env.signal });
  if (compressionOf(layer.d.mediaType) !== 'gzip') return blob;
  // An error on either side destroys both and reaches the writer through the returned stream.
  return pipe(blob, gunzip(), () => {});
}

/** zlib's default 16 KiB output chunks make inflating three times slower than this. */
const gunzip = () => createGunzip({ chunkSize: 256 << 10 });

/** Bytes of a gzip stream once inflated (every member): BuildResult does not carry it. */
async function inflatedSize(gz: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  const count = new Writable({
    write(chunk: Buffer, _enc, done) {
      n += chunk.length;
      done();
    },
  });
  await pipeline(gz, gunzip(), count);
  return n;
}
