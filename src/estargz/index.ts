/**
 * eStargz: a pure library (no FUSE, no IPFS) over BlobSource.
 *
 * - `openEstargz(source, { tocDigest })`: footer, TOC, checks, layer model, verified reads.
 * - `chunkRange` + `decodeChunk`: for a chunk reader with its own cache and fetching.
 * - `buildEstargz(tar, out, opts)`: tar → eStargz, readable by the reference reader.
 */
export { chunkRange, decodeChunk, readChunk, CHUNK_DIGEST_MISMATCH, type ChunkContext } from './chunk.js';
export { encodeFooter, parseFooter, FOOTER_SIZE, LEGACY_FOOTER_SIZE, type Footer } from './footer.js';
export type { ChunkTable } from './chunk-table.js';
export type { LayerModel, LayerNode, NodeRole, NodeType } from './model.js';
export { ROOT_ID } from './node-table.js';
export { cleanName, NO_PREFETCH_LANDMARK, OPAQUE_MARKER, PREFETCH_LANDMARK, WHITEOUT_PREFIX } from './names.js';
export { openEstargz, checkTocDigest, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_TOC_BYTES, FILE_DIGEST_MISMATCH, type Estargz, type OpenOptions } from './reader.js';
export type { TarTime } from './tar.js';
export type { Chunk, Toc, TocEntry, TocEntryType } from './toc.js';
export { buildEstargz, DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL, type BuildOptions, type BuildResult } from './writer.js';
