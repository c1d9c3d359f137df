/** One exposition from the daemon's two processes: ours summed, runtime metrics the daemon's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeExpositions } from '../src/metrics/merge.js';

const daemon = `# HELP stargz_ipfs_fetched_bytes_total Bytes.
# TYPE stargz_ipfs_fetched_bytes_total counter
stargz_ipfs_fetched_bytes_total 0

# HELP stargz_fs_operation_duration_milliseconds Latency.
# TYPE stargz_fs_operation_duration_milliseconds histogram

# HELP process_resident_memory_bytes RSS.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 100
# HELP stargz_ipfs_remote_snapshot_fallbacks_total Fallbacks.
# TYPE stargz_ipfs_remote_snapshot_fallbacks_total counter
stargz_ipfs_remote_snapshot_fallbacks_total{reason="NOT_ESTARGZ"} 2
`;

const server = `# HELP stargz_ipfs_fetched_bytes_total Bytes.
# TYPE stargz_ipfs_fetched_bytes_total counter
stargz_ipfs_fetched_bytes_total 4096
# HELP stargz_fs_operation_duration_milliseconds Latency.
# TYPE stargz_fs_operation_duration_milliseconds histogram
stargz_fs_operation_duration_milliseconds_bucket{le="1",operation_type="mount",layer="sha256:x"} 1
stargz_fs_operation_duration_milliseconds_bucket{le="+Inf",operation_type="mount",layer="sha256:x"} 1
stargz_fs_operation_duration_milliseconds_sum{operation_type="mount",layer="sha256:x"} 0.5
stargz_fs_operation_duration_milliseconds_count{operation_type="mount",layer="sha256:x"} 1
# HELP process_resident_memory_bytes RSS.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 900
# HELP stargz_ipfs_cache_hits_total Hits.
# TYPE stargz_ipfs_cache_hits_total counter
stargz_ipfs_cache_hits_total 7
`;

test('families of ours are summed, runtime families stay the first text\'s, every name appears once', () => {
  const merged = mergeExpositions(daemon, server);
  const lines = merged.split('\n');
  assert.ok(lines.includes('stargz_ipfs_fetched_bytes_total 4096'));
  assert.ok(lines.includes('stargz_fs_operation_duration_milliseconds_bucket{le="+Inf",operation_type="mount",layer="sha256:x"} 1'));
  assert.ok(lines.includes('stargz_fs_operation_duration_milliseconds_sum{operation_type="mount",layer="sha256:x"} 0.5'));
  assert.ok(lines.includes('process_resident_memory_bytes 100'));
  assert.ok(!lines.includes('process_resident_memory_bytes 900'));
  assert.ok(lines.includes('stargz_ipfs_remote_snapshot_fallbacks_total{reason="NOT_ESTARGZ"} 2'));
  assert.ok(lines.includes('stargz_ipfs_cache_hits_total 7'));
  for (const name of ['stargz_ipfs_fetched_bytes_total', 'process_resident_memory_bytes', 'stargz_fs_operation_duration_milliseconds']) {
    assert.equal(lines.filter((l) => l.startsWith(`# TYPE ${name} `)).length, 1, name);
  }
});

test('both processes counting the same sample add up', () => {
  const merged = mergeExpositions(server, server);
  assert.ok(merged.split('\n').includes('stargz_ipfs_fetched_bytes_total 8192'));
  assert.ok(merged.split('\n').includes('stargz_fs_operation_duration_milliseconds_count{operation_type="mount",layer="sha256:x"} 2'));
});
