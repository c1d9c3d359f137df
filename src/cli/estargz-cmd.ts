/**
 * `stargz-ipfs estargz list|verify|build`: look into, check and make eStargz blobs.
 * `list` prints the same JSON lines as the reference tool's `estargz-ref list`, so the two
 * can be compared line by line. Failures are one line on stderr and a non-zero exit.
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { errorMessage, SgError } from '../errors.js';
import { CHUNK_DIGEST_MISMATCH } from '../estargz/chunk.js';
import { FILE_DIGEST_MISMATCH, openEstargz, type Estargz } from '../estargz/reader.js';
import type { Toc, TocEntry } from '../estargz/toc.js';
import { buildEstargz } from '../estargz/writer.js';
import { FileBlobSource } from '../source/file-source.js';
import type { BlobSource } from '../source/blob-source.js';

const USAGE = `usage:
  stargz-ipfs estargz list <blob> [--toc-digest sha256:…]
  stargz-ipfs estargz verify <blob> [--toc-digest sha256:…]
  stargz-ipfs estargz build <in.tar> <out> [--chunk-size N] [--level 0-9]
                            [--prioritized FILE]... [--allow-missing]
`;

const commands: Record<string, (args: string[]) => Promise<number>> = { list, verify, build };

export async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const cmd = name === undefined ? undefined : commands[name];
  if (!cmd) {
    process.stderr.write(name === undefined || name === 'help' || name === '--help' ? USAGE : `stargz-ipfs estargz: unknown command "${name}"\n${USAGE}`);
    return name === 'help' || name === '--help' ? 0 : 2;
  }
  try {
    return await cmd(rest);
  } catch (err) {
    if (isUsageError(err)) {
      process.stderr.write(`stargz-ipfs estargz ${name}: ${errorMessage(err)}\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`stargz-ipfs estargz ${name}: ${errorMessage(err)}\n`);
    return 1;
  }
}

/** Where a `list` failed, in the reference tool's words. */
type Stage = 'footer' | 'open' | 'verifyTOC' | 'read' | 'chunkDigest' | 'fileDigest';

class ListFailure extends Error {
  constructor(
    readonly stage: Stage,
    readonly error: unknown,
  ) {
    super(errorMessage(error));
  }
}

async function list(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, options: { 'toc-digest': { type: 'string' } }, allowPositionals: true, strict: true });
  const path = onePositional(positionals, 'blob');
  const out = (line: object) => process.stdout.write(JSON.stringify(line) + '\n');
  try {
    const source = new FileBlobSource(path);
    const esgz = await openEstargz(source).catch((err: unknown) => {
      throw new ListFailure(err instanceof SgError && err.code === 'NOT_ESTARGZ' ? 'footer' : 'open', err);
    });
    const toc = await esgz.readToc();
    out({
      kind: 'blob',
      blobSize: esgz.blobSize,
      blobSha256: await blobSha256(source),
      footerSize: esgz.footer.footerSize,
      tocOffset: esgz.footer.tocOffset,
      tocDigest: esgz.tocDigest,
      tocVersion: toc.version,
      numTocEntries: toc.numTocEntries,
      numEntries: toc.entries.length,
    });
    const want = values['toc-digest'];
    if (want !== undefined && want !== esgz.tocDigest) {
      throw new ListFailure('verifyTOC', new SgError('TOC_DIGEST_MISMATCH', 'TOC digest does not match', { expected: want, actual: esgz.tocDigest }));
    }
    for (const e of toc.entries) out(await entryLine(esgz, toc, e));
    return 0;
  } catch (err) {
    const failure = err instanceof ListFailure ? err : new ListFailure('open', err);
    const ctx = failure.error instanceof SgError ? failure.error.context : {};
    out({ kind: 'error', stage: failure.stage, entry: ctx.entry, chunkOffset: ctx.chunkOffset, message: failure.message });
    process.stderr.write(`stargz-ipfs estargz list: ${failure.stage}: ${failure.message}\n`);
    return 1;
  }
}

async function entryLine(esgz: Estargz, toc: Toc, e: TocEntry): Promise<object> {
  const node = esgz.model.lookup(e.name)!;
  let sha256: string | null = null;
  if (node.type === 'reg' && (e.type === 'reg' || e.type === 'hardlink')) {
    const h = createHash('sha256');
    try {
      for await (const part of esgz.fileChunks(e.name)) h.update(part);
    } catch (err) {
      throw new ListFailure(readStage(err), err);
    }
    sha256 = 'sha256:' + h.digest('hex');
  }
  return {
    kind: 'entry',
    index: e.index,
    name: e.name,
    tocName: e.tocName,
    type: e.type,
    size: e.size,
    mode: e.mode.toString(8).padStart(4, '0'),
    uid: e.uid,
    gid: e.gid,
    userName: e.userName,
    groupName: e.groupName,
    modtime: e.modtime,
    linkName: e.linkName,
    devMajor: e.devMajor,
    devMinor: e.devMinor,
    xattrs: Object.fromEntries([...e.xattrs].map(([k, v]) => [k, v.toString('base64')])),
    digest: e.digest,
    numLink: node.numLink,
    numChunks: e.numChunks,
    chunks: (e.numChunks > 0 ? toc.chunks.fileChunks(e.firstChunk) : []).map((c) => ({
      offset: c.offset,
      nextOffset: c.nextOffset,
      chunkOffset: c.chunkOffset,
      chunkSize: c.chunkSize,
      rawChunkSize: c.rawChunkSize,
      chunkDigest: c.chunkDigest,
    })),
    sha256,
  };
}

function readStage(err: unknown): Stage {
  if (err instanceof SgError && err.message === CHUNK_DIGEST_MISMATCH) return 'chunkDigest';
  if (err instanceof SgError && err.message === FILE_DIGEST_MISMATCH) return 'fileDigest';
  return 'read';
}

async function verify(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, options: { 'toc-digest': { type: 'string' } }, allowPositionals: true, strict: true });
  const path = onePositional(positionals, 'blob');
  const esgz = await openEstargz(new FileBlobSource(path), { tocDigest: values['toc-digest'] });
  let files = 0;
  let chunks = 0;
  let bytes = 0;
  for (const node of esgz.model.nodes()) {
    if (node.type !== 'reg') continue;
    files++;
    for await (const part of esgz.fileChunks(node.name)) {
      chunks++;
      bytes += part.length;
    }
  }
  process.stdout.write(JSON.stringify({ ok: true, tocDigest: esgz.tocDigest, files, chunks, bytes }) + '\n');
  return 0;
}

async function build(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    options: {
      'chunk-size': { type: 'string' },
      level: { type: 'string' },
      prioritized: { type: 'string', multiple: true },
      'allow-missing': { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 2) throw usageError('expected <in.tar> <out>');
  const [input, output] = positionals as [string, string];
  const result = await buildEstargz(input, output, {
    chunkSize: intFlag(values['chunk-size'], 'chunk-size', 1),
    level: intFlag(values.level, 'level', 0),
    prioritizedFiles: values.prioritized ?? [],
    allowMissingPrioritized: values['allow-missing'] ?? false,
  });
  const line: Record<string, unknown> = { tocDigest: result.tocDigest, diffID: result.diffID, blobDigest: result.blobDigest, size: result.size };
  if (result.missedPrioritizedFiles.length > 0) line.missedPrioritizedFiles = result.missedPrioritizedFiles;
  process.stdout.write(JSON.stringify(line) + '\n');
  return 0;
}

async function blobSha256(source: BlobSource): Promise<string> {
  const h = createHash('sha256');
  const size = await source.size();
  const piece = 8 << 20;
  for (let at = 0; at < size; at += piece) h.update(await source.readRange(at, Math.min(piece, size - at)));
  return 'sha256:' + h.digest('hex');
}

function onePositional(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw usageError(`expected one <${what}>`);
  return positionals[0]!;
}

function intFlag(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw usageError(`--${name} must be an integer ≥ ${min}`);
  return Number(v);
}

const USAGE_ERROR = Symbol('usage');

function usageError(message: string): Error {
  return Object.assign(new Error(message), { [USAGE_ERROR]: true });
}

/** Our own usage errors and parseArgs's (unknown flag, missing value). */
function isUsageError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (USAGE_ERROR in err) return true;
  return 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS_');
}
