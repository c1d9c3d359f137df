/** Where the external tools the tests drive (never our code) are found. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const KUBO_VERSION = '0.42.0';

function goBinDir(): string | undefined {
  try {
    const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
    return gopath ? join(gopath, 'bin') : undefined;
  } catch {
    return undefined;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** `name` from $SGIPFS_TOOLS, the Go bin dir, then PATH. */
export function findTool(name: string): string {
  const candidates = [process.env.SGIPFS_TOOLS && join(process.env.SGIPFS_TOOLS, name)];
  const gobin = goBinDir();
  if (gobin) candidates.push(join(gobin, name));
  for (const c of candidates) if (c && existsSync(c)) return c;
  const p = onPath(name);
  if (p) return p;
  throw new Error(`${name} not found (looked in $SGIPFS_TOOLS, the Go bin dir and PATH); run bash .ci/run or scripts/install-tools.sh`);
}
