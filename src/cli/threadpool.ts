/**
 * Imported first by the entry points. Chunk cache I/O and inflating run on libuv's pool,
 * whose default of 4 threads would cap the reads a mount serves in parallel; the size is
 * read once, at the pool's first use, so it must be set before any other import does I/O.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
