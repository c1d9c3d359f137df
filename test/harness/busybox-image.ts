/**
 * A tiny OCI image built offline from Debian's busybox-static: one gzip layer with
 * /bin/busybox and a symlink per applet we use, written as an OCI image layout tar
 * that `ctr images import` takes. Byte-for-byte reproducible.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, readFileSync, copyFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

export const BUSYBOX_APPLETS = ['sh', 'echo', 'cat', 'ls', 'sha256sum', 'head', 'wc', 'sleep', 'true', 'stat', 'dd'];

export interface BuiltImage {
  /** OCI layout tar for `ctr images import`. */
  tarPath: string;
  /** Name recorded in the index (io.containerd.image.name). */
  name: string;
  manifestDigest: string;
}

const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

export function buildBusyboxImage(scratch: string, name = 'docker.io/library/sgt-busybox:latest'): BuiltImage {
  const dir = join(scratch, 'img');
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const a of BUSYBOX_APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  const layerTar = join(dir, 'layer.tar');
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', layerTar, '-C', rootfs, 'bin']);
  const tarBytes = readFileSync(layerTar);
  const layer = execFileSync('gzip', ['-n', '-c', layerTar], { maxBuffer: 1 << 30 });
  const blobs = join(dir, 'oci', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Uint8Array): string => {
    const d = sha(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return d;
  };
  const layerDigest = put(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [sha(tarBytes)] },
    }),
  );
  const configDigest = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = put(manifest);
  writeFileSync(join(dir, 'oci', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'oci', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': 'latest' },
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  const tarPath = join(dir, 'image.tar');
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', tarPath, '-C', join(dir, 'oci'), 'oci-layout', 'index.json', 'blobs']);
  return { tarPath, name, manifestDigest };
}
