/**
 * A real containerd (Debian's 1.6 by default) with runc, under a scratch dir:
 * temporary root/state/socket, CRI off, `[proxy_plugins.stargz]` pointing at a socket
 * the test names. Every test gets its own namespace so that runc state under
 * /run/containerd can be found and removed afterwards.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startProc, waitFor, type Proc } from './proc.js';

const execFileAsync = promisify(execFile);

export interface Containerd {
  readonly address: string;
  readonly namespace: string;
  readonly root: string;
  readonly ctrBin: string;
  /** Runs `ctr -a ADDR -n NS args…`; rejects with stderr on failure. */
  ctr(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** Our snapshotter socket for `[proxy_plugins.stargz]`. */
  stargzSocket?: string;
  /** Daemon root for containerd 2.x's `[proxy_plugins.stargz.exports] root`. */
  stargzRoot?: string;
  containerdBin?: string;
  ctrBin?: string;
  /** Prepended to containerd's PATH: where its shim (containerd-shim-runc-v2) is, for a custom build. */
  shimDir?: string;
}

export async function startContainerd(scratch: string, opts: ContainerdOptions = {}): Promise<Containerd> {
  const dir = join(scratch, 'ctd');
  mkdirSync(dir, { recursive: true });
  const address = join(dir, 'c.sock');
  const namespace = `sgt${process.pid}${Math.floor(Math.random() * 1e6)}`;
  const lines = [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${join(dir, 'ttrpc.sock')}"`,
  ];
  if (opts.stargzSocket) {
    lines.push('[proxy_plugins]', '  [proxy_plugins.stargz]', '    type = "snapshot"', `    address = "${opts.stargzSocket}"`);
    if (opts.stargzRoot) {
      lines.push('  [proxy_plugins.stargz.exports]', `    root = "${opts.stargzRoot}"`, '    enable_remote_snapshot_annotations = "true"');
    }
  }
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, lines.join('\n') + '\n');
  const bin = opts.containerdBin ?? 'containerd';
  const ctrBin = opts.ctrBin ?? 'ctr';
  const env = opts.shimDir ? { ...process.env, PATH: `${opts.shimDir}:${process.env.PATH ?? ''}` } : process.env;
  const proc: Proc = startProc(bin, ['--config', configPath, '--log-level', 'info'], join(dir, 'containerd.log'), { env });
  await waitFor('containerd socket', 30_000, async () => {
    if (proc.child.exitCode !== null) throw new Error(`containerd exited: ${readFileSync(proc.logPath, 'utf8').slice(-800)}`);
    await execFileAsync(ctrBin, ['-a', address, 'version'], { timeout: 5000 });
    return true;
  });
  const ctr = async (args: string[], o: { timeoutMs?: number } = {}): Promise<string> => {
    try {
      const { stdout } = await execFileAsync(ctrBin, ['-a', address, '-n', namespace, ...args], {
        timeout: o.timeoutMs ?? 120_000,
        maxBuffer: 64 << 20,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`ctr ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  return {
    address,
    namespace,
    root: dir,
    ctrBin,
    ctr,
    async stop() {
      // Tasks first, so that no shim outlives containerd; then containerd itself.
      try {
        for (const line of (await ctr(['tasks', 'ls', '-q'], { timeoutMs: 10_000 })).split('\n').filter(Boolean)) {
          await ctr(['tasks', 'kill', '-s', 'SIGKILL', line], { timeoutMs: 10_000 }).catch(() => {});
          await ctr(['tasks', 'delete', '-f', line], { timeoutMs: 10_000 }).catch(() => {});
        }
      } catch {
        // containerd may already be gone; the scratch reaper kills leftovers
      }
      await proc.stop('SIGTERM', 10_000);
      cleanRunState(namespace);
    },
  };
}

/** runc and shim state that containerd keeps under /run whatever its state dir is. */
function cleanRunState(namespace: string): void {
  for (const base of ['/run/containerd/runc', '/run/containerd/io.containerd.runtime.v2.task']) {
    rmSync(join(base, namespace), { recursive: true, force: true });
  }
}

/** True when containerd and runc are installed (CI installs them; a dev machine may not). */
export function haveContainerd(): boolean {
  try {
    execFileSync('containerd', ['--version'], { stdio: 'ignore' });
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
