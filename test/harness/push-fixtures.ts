/**
 * Images for push tests and the push bench, built offline as OCI layout tars for
 * `ctr images import`: a busybox-static layer plus layers of given files, OCI or Docker
 * media types, one manifest or a multi-platform index. Byte-for-byte reproducible.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BUSYBOX_APPLETS } from './busybox-image.js';

/** Literal content, or `size` bytes of seeded semi-random data (half random, half repeats). */
export type FileSpec = string | Buffer | { readonly size: number; readonly seed: number };

export interface ImageSpec {
  /** Name recorded for `ctr images import`, e.g. `example.com/sgt/img:1`. */
  readonly name: string;
  /** Layers after the busybox one: path → content. */
  readonly layers: readonly Readonly<Record<string, FileSpec>>[];
  readonly docker?: boolean;
  /** More than one: an index with a manifest per platform (same layers, own config). */
  readonly platforms?: readonly string[];
  readonly gzipLevel?: number;
  /** Keep each layer's uncompressed tar (for a baseline that adds them to IPFS as they are). */
  readonly keepTars?: boolean;
}

export interface Built {
  readonly tarPath: string;
  readonly name: string;
  /** Digests of the layer blobs, in manifest order. */
  readonly layerDigests: readonly string[];
  /** Digest of what the image record points at (manifest or index). */
  readonly targetDigest: string;
  /** The uncompressed layer tars, with `keepTars`. */
  readonly layerTars: readonly string[];
}

const MEDIA = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
};

const TAR_FLAGS = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner'];

export async function buildImage(dir: string, spec: ImageSpec): Promise<Built> {
  const media = spec.docker ? MEDIA.docker : MEDIA.oci;
  const blobs = join(dir, 'oci', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): { digest: string; size: number } => {
    const digest = sha256(b);
    writeFileSync(join(blobs, digest.slice(7)), b);
    return { digest, size: b.length };
  };

  const layers: { digest: string; size: number; diffID: string }[] = [];
  const roots = [busyboxRoot(join(dir, 'rootfs-0')), ...spec.layers.map((files, i) => filesRoot(join(dir, `rootfs-${i + 1}`), files))];
  const layerTars = roots.map((_, i) => join(dir, `layer-${i}.tar`));
  for (const [i, root] of roots.entries()) layers.push(await layerBlob(root, layerTars[i]!, blobs, spec.gzipLevel ?? 6, spec.keepTars ?? false));

  const platforms = spec.platforms ?? ['linux/amd64'];
  const manifests = platforms.map((p) => {
    const [os, architecture, variant] = p.split('/') as [string, string, string | undefined];
    const config = put(
      json({
        architecture,
        os,
        ...(variant && { variant }),
        config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
      }),
    );
    const manifest = put(
      json({
        schemaVersion: 2,
        mediaType: media.manifest,
        config: { mediaType: media.config, ...config },
        layers: layers.map((l) => ({ mediaType: media.layer, digest: l.digest, size: l.size })),
      }),
    );
    return { mediaType: media.manifest, ...manifest, platform: { architecture, os, ...(variant && { variant }) } };
  });
  const annotations = { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': 'latest' };
  const target = manifests.length === 1 ? { ...manifests[0]! } : { mediaType: media.index, ...put(json({ schemaVersion: 2, mediaType: media.index, manifests })) };
  writeFileSync(join(dir, 'oci', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'oci', 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...target, annotations }] }));
  const tarPath = join(dir, 'image.tar');
  execFileSync('tar', [...TAR_FLAGS, '-cf', tarPath, '-C', join(dir, 'oci'), 'oci-layout', 'index.json', 'blobs']);
  rmSync(join(dir, 'oci'), { recursive: true, force: true });
  return { tarPath, name: spec.name, layerDigests: layers.map((l) => l.digest), targetDigest: target.digest, layerTars: spec.keepTars ? layerTars : [] };
}

function busyboxRoot(root: string): string {
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const a of BUSYBOX_APPLETS) symlinkSync('busybox', join(root, 'bin', a));
  return root;
}

function filesRoot(root: string, files: Readonly<Record<string, FileSpec>>): string {
  mkdirSync(root, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    if (typeof content === 'string' || Buffer.isBuffer(content)) writeFileSync(file, content);
    else writeSemiRandom(file, content.size, content.seed);
  }
  return root;
}

/** Compresses to about half: every 16 KiB of seeded pseudo-random bytes is written twice. */
function writeSemiRandom(file: string, size: number, seed: number): void {
  const HALF = 16 * 1024;
  const key = createHash('sha256').update(String(seed)).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < size; ) {
      const random = stream.update(Buffer.alloc(HALF));
      const block = Buffer.concat([random, random]);
      const take = Math.min(block.length, size - done);
      writeSync(fd, block, 0, take);
      done += take;
    }
  } finally {
    closeSync(fd);
  }
}

async function layerBlob(root: string, tarPath: string, blobs: string, level: number, keepTar: boolean): Promise<{ digest: string; size: number; diffID: string }> {
  execFileSync('tar', [...TAR_FLAGS, '-cf', tarPath, '-C', root, ...readdirSync(root).sort()]);
  rmSync(root, { recursive: true, force: true });
  const diffID = await fileSha256(tarPath);
  execFileSync('gzip', ['-n', `-${level}`, '-f', ...(keepTar ? ['-k'] : []), tarPath]);
  const gz = `${tarPath}.gz`;
  const digest = await fileSha256(gz);
  const size = Number(execFileSync('stat', ['-c', '%s', gz]).toString().trim());
  renameSync(gz, join(blobs, digest.slice(7)));
  return { digest, size, diffID };
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}
