/**
 * The kernel side of a FUSE mount: mount(2) of our /dev/fuse descriptor, the mount
 * table (/proc/self/mountinfo), detaching with escalation (plain, lazy, then aborting a
 * connection whose server hangs), and the mount's readahead. Needs root: mount(2) of
 * FUSE without fusermount takes CAP_SYS_ADMIN. Every child is bounded by a timeout.
 */
import { spawn } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import { SgError, errorMessage } from '../errors.js';
import { loadAddon } from '../native/addon.js';

/** umount(8) returns in milliseconds; a stuck one is killed after this. */
const COMMAND_TIMEOUT_MS = 10_000;
const CONNECTIONS = '/sys/fs/fuse/connections';

export interface MountEntry {
  /** The mount's device, `maj:min`. */
  readonly dev: string;
  readonly fstype: string;
}

/** A new FUSE connection: the descriptor the kernel's requests arrive on. */
export function openDevice(): number {
  return openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK);
}

/** mount(2) flags: read-only, no setuid, no device files. */
const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;

/** Mounts connection `fd` at `mountpoint` read-only with mount(2) (native/fuse-mount.c). */
export function mountDevice(fd: number, mountpoint: string): void {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'allow_other'].join(',');
  try {
    loadAddon<{ mount(source: string, target: string, fstype: string, flags: number, data: string): void }>('fuse-mount').mount(
      'stargz',
      mountpoint,
      'fuse.stargz',
      MS_RDONLY | MS_NOSUID | MS_NODEV,
      data,
    );
  } catch (err) {
    throw new SgError('IO', `mount failed: ${errorMessage(err)}`, { mountpoint, errno: (err as NodeJS.ErrnoException).code }, { cause: err });
  }
}

/** Every mount of this process's namespace, from /proc/self/mountinfo, in mount order. */
export async function mountTable(): Promise<(MountEntry & { readonly mountpoint: string })[]> {
  const out: (MountEntry & { readonly mountpoint: string })[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const f = line.split(' ');
    if (f[4] === undefined) continue;
    const sep = f.indexOf('-', 6);
    out.push({ mountpoint: unescapeMountinfo(f[4]), dev: f[2]!, fstype: f[sep + 1] ?? '' });
  }
  return out;
}

/** The topmost mount at `mountpoint` (an absolute path without symlinks), if any. */
export async function findMount(mountpoint: string): Promise<MountEntry | undefined> {
  return (await mountTable()).findLast((m) => m.mountpoint === mountpoint);
}

/**
 * Detaches whatever is mounted at `mountpoint`: a plain unmount (unless `lazy`), then a
 * lazy one (also works with files open, or with the server gone: ENOTCONN), and if the
 * mount is still there its FUSE connection is aborted first. -c: umount(8) must not stat
 * the mountpoint, which would wait on a server that does not answer.
 */
export async function detach(mountpoint: string, log: Logger, lazy = false): Promise<void> {
  const before = await findMount(mountpoint);
  if (!before) return;
  if (!lazy && (await attempt(['-c', mountpoint], log))) return;
  if (await attempt(['-c', '-l', mountpoint], log)) return;
  if (before.fstype.startsWith('fuse')) await abortConnection(before.dev, log);
  if (await attempt(['-c', '-l', mountpoint], log)) return;
  throw new SgError('IO', 'cannot unmount', { mountpoint });
}

/** Makes every pending and future op of the FUSE connection on device `dev` fail (ENOTCONN). */
export async function abortConnection(dev: string, log: Logger): Promise<void> {
  const [major, minor] = dev.split(':').map(Number) as [number, number];
  const abort = `${CONNECTIONS}/${major * 2 ** 20 + minor}/abort`;
  try {
    // fusectl lists the connections; mount it where the init system did not.
    if (!(await findMount(CONNECTIONS))) await run('mount', ['-t', 'fusectl', 'fusectl', CONNECTIONS]);
    await writeFile(abort, '1');
    log.warn('aborted a FUSE connection that did not unmount', { dev });
  } catch (err) {
    log.warn('cannot abort FUSE connection', { dev, err });
  }
}

/**
 * Sets the mount's read_ahead_kb (its bdi, by device number). Without root or sysfs the
 * kernel default stays and reads still work.
 */
export async function setReadahead(dev: string, kib: number, log: Logger): Promise<void> {
  try {
    await writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kib));
  } catch (err) {
    log.debug('cannot raise FUSE readahead; kernel default kept', { dev, kib, err });
  }
}

async function attempt(args: string[], log: Logger): Promise<boolean> {
  try {
    await run('umount', args);
    return true;
  } catch (err) {
    log.debug('umount failed', { args, err: errorMessage(err) });
    return false;
  }
}

/** Runs `cmd` to completion; rejects with its stderr on failure or after the timeout. */
function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new SgError('IO', `${cmd} failed: ${err.message}`, { args: args.join(' ') }, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new SgError('IO', `${cmd} failed: ${stderr.trim() || (signal ? `killed by ${signal}` : `exit ${code}`)}`, { args: args.join(' ') }));
    });
  });
}

/** A mountinfo path field as a path (mountinfo octal-escapes space, tab, newline, backslash). */
const unescapeMountinfo = (s: string): string => s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
