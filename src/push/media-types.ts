/**
 * Media types a push meets, and the Docker → OCI mapping of containerd's converter
 * (images/converter/default.go `ConvertDockerMediaTypeToOCI`): ipfs-push always emits OCI.
 */
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCI_NONDIST = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
const DOCKER_FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar';

export const OCI = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: `${OCI_LAYER}+gzip`,
} as const;

const DOCKER_TO_OCI: Readonly<Record<string, string>> = {
  'application/vnd.docker.distribution.manifest.list.v2+json': OCI.index,
  'application/vnd.docker.distribution.manifest.v2+json': OCI.manifest,
  'application/vnd.docker.container.image.v1+json': OCI.config,
  [DOCKER_LAYER]: OCI_LAYER,
  [`${DOCKER_LAYER}.gzip`]: `${OCI_LAYER}+gzip`,
  [DOCKER_FOREIGN]: OCI_NONDIST,
  [`${DOCKER_FOREIGN}.gzip`]: `${OCI_NONDIST}+gzip`,
};

export const toOci = (mediaType: string): string => DOCKER_TO_OCI[mediaType] ?? mediaType;

export type BlobKind = 'index' | 'manifest' | 'config' | 'layer' | 'other';

export function kindOf(mediaType: string): BlobKind {
  const oci = toOci(mediaType);
  if (oci === OCI.index) return 'index';
  if (oci === OCI.manifest) return 'manifest';
  if (oci === OCI.config) return 'config';
  if (oci.startsWith(OCI_LAYER) || oci.startsWith(OCI_NONDIST)) return 'layer';
  return 'other';
}

export type Compression = 'none' | 'gzip' | 'zstd' | 'unknown';

/** Of a layer media type (either family). */
export function compressionOf(mediaType: string): Compression {
  const oci = toOci(mediaType);
  if (oci === OCI_LAYER || oci === OCI_NONDIST) return 'none';
  if (oci.endsWith('+gzip')) return 'gzip';
  if (oci.endsWith('+zstd')) return 'zstd';
  return 'unknown';
}

/** The OCI media type of a layer once it is an eStargz (gzip) blob. */
export function estargzMediaType(mediaType: string): string {
  const oci = toOci(mediaType);
  return oci.startsWith(OCI_NONDIST) ? `${OCI_NONDIST}+gzip` : OCI.layerGzip;
}
