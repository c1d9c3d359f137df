/**
 * Temporary directories for tests, and the reaper that makes a crashed or SIGKILLed run
 * harmless: every scratch dir records its owner pid; at the next start, dirs whose owner
 * is gone get their mounts detached and every process that mentions them killed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const SCRATCH_PREFIX = '/tmp/sgt-';

export function makeScratch(): string {
  const dir = mkdtempSync(SCRATCH_PREFIX);
  writeFileSync(join(dir, '.owner'), `${process.pid} ${processStart(process.pid)}\n`);
  return dir;
}

/** Unmounts, kills and deletes everything under `dir`. Safe to call twice. */
export function destroyScratch(dir: string): void {
  killProcessesMentioning(dir);
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Clean every scratch dir left by a run whose process is gone. */
export function reapStale(): void {
  for (const name of readdirSync('/tmp')) {
    const dir = join('/tmp', name);
    if (!dir.startsWith(SCRATCH_PREFIX)) continue;
    let alive = false;
    try {
      const [pid, start] = readFileSync(join(dir, '.owner'), 'utf8').trim().split(' ');
      alive = pid !== undefined && processStart(Number(pid)) === start;
    } catch {
      alive = false;
    }
    if (!alive) destroyScratch(dir);
  }
}

/**
 * The process's start time, or '' when it is gone. A zombie counts as gone: a test process
 * killed while serving its own FUSE mounts can stay a zombie until those mounts are detached.
 */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? '' : (fields[19] ?? '');
  } catch {
    return '';
  }
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === dir || path.startsWith(dir + '/')) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length);
}

export function unmountUnder(dir: string): void {
  for (let round = 0; round < 3; round++) {
    const mps = mountsUnder(dir);
    if (mps.length === 0) return;
    for (const mp of mps) {
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('fusermount', ['-u', '-z', mp], { stdio: 'ignore' });
        } catch {
          // reported by the final check below
        }
      }
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`could not unmount: ${left.join(', ')}`);
}

/** Kills (SIGKILL) every process other than us whose command line or environment names `dir`. */
export function killProcessesMentioning(dir: string): number[] {
  const killed: number[] = [];
  for (const ent of readdirSync('/proc')) {
    const pid = Number(ent);
    if (!Number.isInteger(pid) || pid === process.pid || pid <= 1) continue;
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/cmdline`, 'latin1') + '\0' + readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (text.includes(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // already gone
      }
    }
  }
  for (const pid of killed) waitGone(pid, 5000);
  return killed;
}

function waitGone(pid: number, ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until && existsSync(`/proc/${pid}`)) {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    if (s === 'Z') return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
