import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, defaultConfig, ConfigError, loadConfig } from '../src/config/load.js';

const example = new URL('../../config.example.toml', import.meta.url);

test('defaults equal upstream for every key of §4.2', () => {
  const c = defaultConfig();
  assert.deepEqual(
    {
      ipfs: c.ipfs, metadata_store: c.metadata_store, metrics_address: c.metrics_address, no_prometheus: c.no_prometheus,
      debug_address: c.debug_address, http_cache_type: c.http_cache_type, filesystem_cache_type: c.filesystem_cache_type,
      resolve_result_entry_ttl_sec: c.resolve_result_entry_ttl_sec, prefetch_size: c.prefetch_size,
      prefetch_timeout_sec: c.prefetch_timeout_sec, prefetch_async_size: c.prefetch_async_size, noprefetch: c.noprefetch,
      no_background_fetch: c.no_background_fetch, debug: c.debug, allow_no_verification: c.allow_no_verification,
      disable_verification: c.disable_verification, max_concurrency: c.max_concurrency, log_file_access: c.log_file_access,
    },
    {
      ipfs: false, metadata_store: 'memory', metrics_address: '', no_prometheus: false, debug_address: '', http_cache_type: '',
      filesystem_cache_type: '', resolve_result_entry_ttl_sec: 120, prefetch_size: 0, prefetch_timeout_sec: 10,
      prefetch_async_size: 0, noprefetch: false, no_background_fetch: false, debug: false, allow_no_verification: false,
      disable_verification: false, max_concurrency: 2, log_file_access: false,
    },
  );
  assert.deepEqual(c.blob, {
    valid_interval: 60, check_always: false, chunk_size: 50000, fetching_timeout_sec: 300, force_single_range_mode: false,
    prefetch_chunk_size: 0, max_retries: 5, min_wait_msec: 30, max_wait_msec: 300000,
  });
  assert.deepEqual(c.directory_cache, { max_lru_cache_entry: 10, max_cache_fds: 10, sync_add: false, direct: true, fadv_dontneed: false });
  assert.deepEqual(c.fuse, { attr_timeout: 1, entry_timeout: 1, passthrough: true, merge_buffer_size: 419430400, merge_worker_count: 10 });
  assert.deepEqual(c.snapshotter, { allow_invalid_mounts_on_restart: false });
  assert.deepEqual(c.fuse_manager, { enable: false, address: '/run/containerd-stargz-grpc/fuse-manager.sock', path: '', metrics_address: '' });
  assert.deepEqual(c.resolver, { request_timeout_sec: 30, host: {} });
  assert.deepEqual(c.kubeconfig_keychain, { enable_keychain: false, kubeconfig_path: '' });
  assert.deepEqual(c.cri_keychain, { enable_keychain: false, image_service_path: '', listen_path: '' });
  assert.deepEqual(c.ipfs_api, { enable: true, api_address: '', request_timeout_sec: 30 });
  assert.deepEqual(c.cache, { dir: '', max_size_bytes: 0 });
});

test('every upstream key is accepted with a non-default value', () => {
  const { config: c, warnings } = parseConfig(
    `metadata_store = "db"
metrics_address = "127.0.0.1:8234"
no_prometheus = true
debug_address = "/run/x.sock"
http_cache_type = "memory"
filesystem_cache_type = "memory"
resolve_result_entry_ttl_sec = 30
resolve_result_entry = 5
prefetch_size = 1048576
prefetch_timeout_sec = 3
prefetch_async_size = 10
noprefetch = true
no_background_fetch = true
debug = true
allow_no_verification = true
disable_verification = true
max_concurrency = 4
log_file_access = true
[blob]
valid_interval = 1
check_always = true
chunk_size = 65536
fetching_timeout_sec = 9
force_single_range_mode = true
prefetch_chunk_size = 100
max_retries = 1
min_wait_msec = 2
max_wait_msec = 3
[directory_cache]
max_lru_cache_entry = 1
max_cache_fds = 2
sync_add = true
direct = false
fadv_dontneed = true
[fuse]
attr_timeout = 5
entry_timeout = 6
passthrough = true
merge_buffer_size = 7
merge_worker_count = 8
[snapshotter]
allow_invalid_mounts_on_restart = true
[fuse_manager]
enable = true
address = "/run/fm.sock"
path = "/usr/bin/fm"
metrics_address = "127.0.0.1:1"
[resolver]
request_timeout_sec = 11
[[resolver.host."docker.io".mirrors]]
host = "mirror.example"
insecure = true
request_timeout_sec = -1
[resolver.host."docker.io".mirrors.header]
x-a = "1"
x-b = ["2", "3"]
[kubeconfig_keychain]
enable_keychain = true
kubeconfig_path = "/k"
[cri_keychain]
enable_keychain = true
image_service_path = "/i"
listen_path = "/l"
[ipfs]
api_address = "/ip4/127.0.0.1/tcp/5001"
request_timeout_sec = 7
[cache]
dir = "/var/cache/sg"
max_size_bytes = 1073741824
`,
    'full.toml',
  );
  assert.deepEqual(warnings, []);
  assert.equal(c.ipfs, true, 'an [ipfs] table turns IPFS mode on');
  assert.equal(c.ipfs_api.api_address, '/ip4/127.0.0.1/tcp/5001');
  assert.equal(c.metadata_store, 'db');
  assert.equal(c.max_concurrency, 4);
  assert.equal(c.blob.chunk_size, 65536);
  assert.equal(c.directory_cache.direct, false);
  assert.equal(c.fuse.entry_timeout, 6);
  assert.equal(c.snapshotter.allow_invalid_mounts_on_restart, true);
  assert.equal(c.fuse_manager.metrics_address, '127.0.0.1:1');
  assert.deepEqual(c.resolver.host['docker.io']?.mirrors, [
    { host: 'mirror.example', insecure: true, request_timeout_sec: -1, header: { 'x-a': ['1'], 'x-b': ['2', '3'] } },
  ]);
  assert.equal(c.cri_keychain.listen_path, '/l');
  assert.equal(c.cache.max_size_bytes, 1073741824);
});

test('keys of an absent embedded table are read from the top level, as upstream decodes them', () => {
  const { config, warnings } = parseConfig('chunk_size = 1234\nattr_timeout = 3\n', 'embedded.toml');
  assert.equal(config.blob.chunk_size, 1234);
  assert.equal(config.fuse.attr_timeout, 3);
  assert.deepEqual(warnings, []);
});

test('upstream boolean `ipfs = true` and our [ipfs] table with enable = false', () => {
  assert.equal(parseConfig('ipfs = true\n', 'a.toml').config.ipfs, true);
  assert.equal(parseConfig('[ipfs]\nenable = false\napi_address = "http://127.0.0.1:5001"\n', 'b.toml').config.ipfs, false);
  assert.throws(() => parseConfig('[ipfs]\nenable = 1\n', 'c.toml'), /key "ipfs\.enable": expected a boolean/);
});

test('unknown keys are warnings, not errors', () => {
  const { config, warnings } = parseConfig('ipfs = true\nfrobnicate = 1\n[blob]\nchunk_sise = 1\n[nonsense]\nx = 1\n', 'u.toml');
  assert.equal(config.ipfs, true);
  assert.deepEqual(warnings.sort(), ['blob.chunk_sise', 'frobnicate', 'nonsense'].sort());
});

const bad: [string, string, RegExp][] = [
  ['syntax error', 'ipfs = \n', /^bad\.toml:1:\d+: invalid TOML/],
  ['wrong type (string for int)', '[blob]\nchunk_size = "big"\n', /key "blob\.chunk_size": expected an integer, got the string "big"/],
  ['wrong type (int for bool)', 'ipfs = 1\n', /key "ipfs": expected a boolean/],
  ['float for int', 'prefetch_size = 1.5\n', /key "prefetch_size": expected an integer, got the float 1.5/],
  ['negative size', '[cache]\nmax_size_bytes = -5\n', /key "cache\.max_size_bytes": must be >= 0, got -5/],
  ['unknown metadata_store', 'metadata_store = "leveldb"\n', /key "metadata_store": must be one of "memory", "db"/],
  ['zero concurrency', 'max_concurrency = 0\n', /key "max_concurrency": must be >= 1/],
  ['table given as scalar', 'blob = 3\n', /key "blob": expected a table/],
];
for (const [name, text, re] of bad) {
  test(`bad config: ${name} → one line naming file and key`, () => {
    assert.throws(() => parseConfig(text, 'bad.toml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, re);
      assert.ok(err.message.startsWith('bad.toml'), err.message);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  });
}

test('config.example.toml parses without warnings', () => {
  const { warnings, config } = parseConfig(readFileSync(example, 'utf8'), 'config.example.toml');
  assert.deepEqual(warnings, []);
  assert.equal(config.ipfs, true);
});

test('a missing default file means all defaults; a missing explicit file is an error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sgt-config-'));
  try {
    const absent = join(dir, 'etc', 'config.toml');
    const loaded = await loadConfig(undefined, absent);
    assert.equal(loaded.file, undefined);
    assert.deepEqual(loaded.config, defaultConfig());
    assert.deepEqual(loaded.warnings, []);
    await assert.rejects(loadConfig(absent), /cannot read/);
    // A default file that exists is read like an explicit one: its errors are not ignored.
    const present = join(dir, 'config.toml');
    writeFileSync(present, 'metadata_store = "nope"\n');
    await assert.rejects(loadConfig(undefined, present), /metadata_store/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
