/** Our daemon as a real process for tests: started on a scratch root and socket, log in a file. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProc, waitFor, type Proc } from './proc.js';

export const DAEMON_JS = new URL('../../src/cli/daemon.js', import.meta.url).pathname;

export interface DaemonProc {
  readonly proc: Proc;
  readonly socket: string;
  readonly root: string;
  readonly logPath: string;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface DaemonOptions {
  /** config.toml text (default: empty = all defaults). */
  config?: string;
  env?: NodeJS.ProcessEnv;
  root?: string;
  socket?: string;
  logName?: string;
}

export async function startDaemon(scratch: string, opts: DaemonOptions = {}): Promise<DaemonProc> {
  const root = opts.root ?? join(scratch, 'root');
  const socket = opts.socket ?? join(scratch, 'sn', 's.sock');
  const config = join(scratch, 'daemon-config.toml');
  writeFileSync(config, opts.config ?? '');
  mkdirSync(join(scratch, 'logs'), { recursive: true });
  const logPath = join(scratch, 'logs', opts.logName ?? 'daemon.log');
  const proc = startProc(process.execPath, [DAEMON_JS, '--root', root, '--address', socket, '--config', config, '--log-level', 'debug'], logPath, {
    env: { ...process.env, ...opts.env },
  });
  const log = () => readFileSync(logPath, 'utf8');
  const before = (() => {
    try {
      return log().length;
    } catch {
      return 0;
    }
  })();
  await waitFor('daemon started', 30_000, () => {
    if (proc.child.exitCode !== null) throw new Error(`daemon exited: ${log().slice(-2000)}`);
    return log().slice(before).includes('"msg":"daemon started"') || undefined;
  });
  return { proc, socket, root, logPath, log, stop: (signal = 'SIGTERM') => proc.stop(signal, 15_000) };
}

/**
 * The value of one sample (`name` or `name{labels}`, as exposed) at a daemon's /metrics
 * URL; NaN when it is absent, so that a missing metric never passes a comparison.
 */
export async function metricValue(url: string, sample: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : NaN;
}
