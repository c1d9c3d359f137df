/** eStargz blobs for layer tests, written by our writer from tars built here. */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { buildEstargz, encodeFooter, type BuildResult } from '../../src/estargz/index.js';

export interface TarFile {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  data?: Buffer;
  mode?: number;
  linkname?: string;
}

export async function tarOf(files: readonly TarFile[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const f of files) {
    const type = f.type ?? 'file';
    const header = { name: f.name, type, mode: f.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: new Date(1_700_000_000_000), uid: 0, gid: 0, linkname: f.linkname };
    pack.entry(header, type === 'file' ? (f.data ?? Buffer.alloc(0)) : '');
  }
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** tar → eStargz blob bytes (in memory; test blobs are small). */
export async function estargzOf(files: readonly TarFile[], chunkSize?: number): Promise<{ blob: Buffer; result: BuildResult }> {
  const out: Buffer[] = [];
  const { Writable } = await import('node:stream');
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  const result = await buildEstargz(Readable.from([await tarOf(files)]), sink, chunkSize ? { chunkSize } : {});
  return { blob: Buffer.concat(out), result };
}

/** A blob whose TOC is whatever JSON the test gives: for hostile-TOC tests. */
export function blobWithToc(toc: unknown): { blob: Buffer; tocDigest: string } {
  const json = Buffer.from(JSON.stringify(toc));
  const header = Buffer.alloc(512);
  header.write('stargz.index.json', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(json.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (json.length % 512)) % 512);
  const tocMember = gzipSync(Buffer.concat([header, json, pad, Buffer.alloc(1024)]));
  return { blob: Buffer.concat([tocMember, encodeFooter(0)]), tocDigest: 'sha256:' + createHash('sha256').update(json).digest('hex') };
}
