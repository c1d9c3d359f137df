/**
 * Mounts a LayerFs over FUSE, served from this process's event loop by our own
 * implementation of the kernel protocol (session.ts, bridge.ts): no libfuse, no threads.
 * Reads of different files overlap (each READ answers when its bytes are there), and the
 * kernel may ask up to 1 MiB per READ.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { LayerFs } from '../layer/fs-api.js';
import { quietLogger, type Logger } from '../log/logger.js';
import { SgError, errorMessage } from '../errors.js';
import { Bridge } from './bridge.js';
import { Session } from './session.js';
import { detach, findMount, mountDevice, openDevice, setReadahead } from './kernel-mount.js';

export interface MountOptions {
  /** Seconds the kernel may cache attributes and lookups ([fuse] attr_timeout / entry_timeout). */
  attrTimeoutSec: number;
  entryTimeoutSec: number;
  log: Logger;
  /**
   * Kernel readahead of the mount, KiB (its bdi's read_ahead_kb): how far ahead of a
   * sequential reader the kernel keeps READs (of up to 1 MiB each) in flight. 0 keeps the
   * kernel's default (128 KiB).
   */
  readaheadKiB?: number;
  /** Logs every op at debug when true (decided once, not per op). */
  traceOps?: boolean;
  /**
   * FUSE passthrough ([fuse] passthrough; kernel >= 6.9): a file whose bytes the layer
   * has whole on local disk is opened on that file, and the kernel reads it without us.
   */
  passthrough?: boolean;
}

export interface Mounted {
  readonly mountpoint: string;
  unmount(): Promise<void>;
}

/**
 * Up to 4 READs of 1 MiB in flight for a sequential reader. Measured (2 cores, 256 MiB file,
 * page cache dropped): 512 KiB to 16 MiB read the same, warm and cold, since the chunk
 * reader fetches ahead by itself; more than one READ keeps slow sources busy.
 */
const DEFAULT_READAHEAD_KIB = 4096;
/** 256 pages: READs of up to 1 MiB. */
const MAX_PAGES = 256;
/** READs of the kernel's readahead in flight at once (its default is 12). */
const MAX_BACKGROUND = 64;
/** The kernel sends INIT as soon as the mount exists; a server that never sees it is broken. */
const INIT_TIMEOUT_MS = 10_000;
/** Stale mounts stacked at one mountpoint that a new mount clears. */
const STACKED_MOUNTS = 16;

export async function mountLayer(fs: LayerFs, mountpoint: string, opts: MountOptions): Promise<Mounted> {
  const { log } = opts;
  // Synchronous: a mount is on a cold start's path, and these are directories on local disk
  // (two thread pool round trips took ~9 ms under load here, the syscalls microseconds).
  mkdirSync(dirname(mountpoint), { recursive: true });
  // The mount table names real paths; resolving the parent never touches a mount here.
  const real = join(realpathSync(dirname(mountpoint)), basename(mountpoint));
  // Before mkdir, which fails with ENOTCONN on a mount whose server is gone.
  await clearStaleMount(real, log);
  mkdirSync(real, { recursive: true });
  const fd = openDevice();
  const session = new Session(fd, { maxPages: MAX_PAGES, maxBackground: MAX_BACKGROUND, passthrough: opts.passthrough, log });
  try {
    const bridge = new Bridge(fs, session, {
      entrySec: Math.max(opts.entryTimeoutSec, 1),
      attrSec: Math.max(opts.attrTimeoutSec, 1),
      log,
      trace: opts.traceOps ?? log.enabled('debug'),
    });
    mountDevice(fd, real);
    // /dev/fuse polls as an error until mounted: watch only now (INIT is queued meanwhile).
    session.start(bridge);
  } catch (err) {
    session.close();
    await detach(real, log, true).catch(() => {});
    throw new SgError('IO', `FUSE mount failed: ${errorMessage(err)}`, { mountpoint }, { cause: err });
  }
  const unmount = async () => {
    try {
      await detach(real, log);
    } finally {
      session.close();
    }
  };
  try {
    await within(session.initialized, INIT_TIMEOUT_MS, 'FUSE INIT');
  } catch (err) {
    await unmount().catch(() => {});
    throw new SgError('IO', `FUSE mount failed: ${errorMessage(err)}`, { mountpoint }, { cause: err });
  }
  const readahead = opts.readaheadKiB ?? DEFAULT_READAHEAD_KIB;
  const entry = await findMount(real);
  if (entry && readahead > 0) await setReadahead(entry.dev, readahead, log);
  log.debug('layer mounted', { mountpoint });
  let unmounted: Promise<void> | undefined;
  return {
    mountpoint,
    unmount() {
      unmounted ??= unmount().catch((err: unknown) => log.warn('fuse unmount failed', { mountpoint, err }));
      return unmounted;
    },
  };
}

/**
 * Detaches a mount left at `mountpoint` (by a killed process: ENOTCONN, or a hung one) so
 * that the directory can be mounted again. Lazily: anyone still using it keeps it.
 */
export async function clearStaleMount(mountpoint: string, log: Logger = quietLogger): Promise<void> {
  // Mounts may be stacked (a crash loop that mounted again and again): one at a time.
  for (let i = 0; i < STACKED_MOUNTS && (await findMount(mountpoint)); i++) await detach(mountpoint, log, true);
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new SgError('TIMEOUT', `${what} timed out`, { ms })), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
