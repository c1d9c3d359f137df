/**
 * Every config.toml key the daemon accepts, with upstream's default
 * (shared/spec/upstream-behaviour.md §4.2) and our additions ([ipfs], [cache]).
 * The schema is data so that validation, defaults and the docs test walk one table.
 */
export type KeyType = 'bool' | 'int' | 'string' | 'mirrors';

export interface KeySpec {
  readonly type: KeyType;
  readonly default: boolean | number | string;
  /** Smallest allowed value for ints (default 0: sizes and timeouts cannot be negative). */
  readonly min?: number;
  readonly oneOf?: readonly string[];
  /** Accepted for compatibility, has no effect. */
  readonly ignored?: boolean;
}

const bool = (d: boolean) => ({ type: 'bool', default: d }) as const;
const int = (d: number, min = 0) => ({ type: 'int', default: d, min }) as const;
const str = (d: string, oneOf?: readonly string[]) => ({ type: 'string', default: d, ...(oneOf ? { oneOf } : {}) }) as const;

export const TOP_LEVEL_KEYS = {
  ipfs: bool(false),
  metadata_store: str('memory', ['memory', 'db']),
  metrics_address: str(''),
  no_prometheus: bool(false),
  debug_address: str(''),
  http_cache_type: str(''),
  filesystem_cache_type: str(''),
  resolve_result_entry_ttl_sec: int(120),
  resolve_result_entry: { ...int(0), ignored: true },
  prefetch_size: int(0),
  prefetch_timeout_sec: int(10),
  prefetch_async_size: int(0),
  noprefetch: bool(false),
  no_background_fetch: bool(false),
  debug: bool(false),
  allow_no_verification: bool(false),
  disable_verification: bool(false),
  max_concurrency: int(2, 1),
  log_file_access: bool(false),
} as const satisfies Record<string, KeySpec>;

export const TABLES = {
  blob: {
    valid_interval: int(60),
    check_always: bool(false),
    chunk_size: int(50000, 1),
    fetching_timeout_sec: int(300, 1),
    force_single_range_mode: bool(false),
    prefetch_chunk_size: int(0),
    max_retries: int(5),
    min_wait_msec: int(30),
    max_wait_msec: int(300000),
  },
  directory_cache: {
    max_lru_cache_entry: int(10),
    max_cache_fds: int(10),
    sync_add: bool(false),
    direct: bool(true),
    fadv_dontneed: bool(false),
  },
  fuse: {
    attr_timeout: int(1),
    entry_timeout: int(1),
    passthrough: bool(true),
    merge_buffer_size: int(419430400, 1),
    merge_worker_count: int(10, 1),
  },
  snapshotter: {
    allow_invalid_mounts_on_restart: bool(false),
  },
  fuse_manager: {
    enable: bool(false),
    address: str('/run/containerd-stargz-grpc/fuse-manager.sock'),
    path: str(''),
    metrics_address: str(''),
  },
  resolver: {
    request_timeout_sec: int(30, -1),
    host: { type: 'mirrors', default: '' } as const,
  },
  kubeconfig_keychain: {
    enable_keychain: bool(false),
    kubeconfig_path: str(''),
  },
  cri_keychain: {
    enable_keychain: bool(false),
    image_service_path: str(''),
    listen_path: str(''),
  },
  // Ours, beyond upstream. Written as the TOML table [ipfs] (see IPFS_TABLE).
  ipfs_api: {
    enable: bool(true),
    api_address: str(''),
    request_timeout_sec: int(30, 1),
  },
  cache: {
    dir: str(''),
    max_size_bytes: int(0),
  },
} as const satisfies Record<string, Record<string, KeySpec>>;

/**
 * Upstream's `ipfs = true` and our `[ipfs]` table share one TOML key, which TOML cannot
 * hold twice: `ipfs` may be a boolean (upstream) or a table, read into `ipfs_api`,
 * whose presence turns IPFS mode on unless it says `enable = false`.
 */
export const IPFS_TABLE = { key: 'ipfs', section: 'ipfs_api' } as const;

/**
 * Tables that upstream embeds in its Go config struct: when such a table is absent,
 * its keys are looked up at the top level instead (a quirk of its TOML decoder that
 * existing config files may rely on).
 */
export const EMBEDDED_TABLES: readonly (keyof typeof TABLES)[] = [
  'blob',
  'directory_cache',
  'fuse',
  'resolver',
  'snapshotter',
  'cri_keychain',
  'kubeconfig_keychain',
];

type ValueOf<S extends KeySpec> = S['type'] extends 'bool' ? boolean : S['type'] extends 'int' ? number : S['type'] extends 'mirrors' ? Record<string, RegistryHost> : string;
type Section<T extends Record<string, KeySpec>> = { -readonly [K in keyof T]: ValueOf<T[K]> };

export interface Mirror {
  host: string;
  insecure: boolean;
  request_timeout_sec: number;
  header: Record<string, string[]>;
}
export interface RegistryHost {
  mirrors: Mirror[];
}

export type Config = Section<typeof TOP_LEVEL_KEYS> & { -readonly [T in keyof typeof TABLES]: Section<(typeof TABLES)[T]> };
