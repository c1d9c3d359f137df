/** Upstream's default paths (spec §4.1), shared by the daemon and the CLI. */
export const DEFAULT_ADDRESS = '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock';
export const DEFAULT_ROOT = '/var/lib/containerd-stargz-grpc';
