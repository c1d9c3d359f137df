/**
 * systemd readiness (Type=notify): `READY=1` once the socket listens, `STOPPING=1` on
 * exit, only when NOTIFY_SOCKET is set. Node cannot send unix datagrams, so we hand the
 * message to systemd's own `systemd-notify`, present wherever systemd runs the unit.
 * `--pid` makes it send with our pid as the sender credentials (allowed for root), so
 * systemd attributes the message to the main process even with NotifyAccess=main, and
 * `--no-block` skips its barrier round trip, which that attribution makes unnecessary.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../log/logger.js';

const execFileAsync = promisify(execFile);

export async function sdNotify(state: 'READY=1' | 'STOPPING=1', log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (!env.NOTIFY_SOCKET) return;
  try {
    await execFileAsync('systemd-notify', ['--no-block', `--pid=${process.pid}`, state], { env, timeout: 5000 });
    log.debug('notified systemd', { state });
  } catch (err) {
    log.warn('cannot notify systemd (is systemd-notify installed?)', { state, error: err });
  }
}
