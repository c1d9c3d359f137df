/**
 * Finds the layer server a previous daemon run left running and adopts it, or starts a
 * new one. The server is detached (own session, not waited for) so that a daemon killed
 * or restarted leaves it, and the mounts under running containers, in place.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SgError } from '../errors.js';
import type { Logger, Level } from '../log/logger.js';
import { LayerServerClient } from './client.js';

export const LAYER_SERVER_JS = new URL('../cli/layer-server.js', import.meta.url).pathname;

/** A server opens the chunk cache before it listens; a large cache index takes a moment. */
const START_TIMEOUT_MS = 60_000;

export interface StartLayerServerOptions {
  readonly socket: string;
  readonly root: string;
  /** `--config` as the daemon got it; the server loads the same file. */
  readonly configPath: string | undefined;
  readonly logLevel: Level;
  readonly log: Logger;
}

export interface StartedLayerServer {
  readonly client: LayerServerClient;
  /** The server was already running (its mounts are adopted), rather than started now. */
  readonly adopted: boolean;
}

export async function startLayerServer(opts: StartLayerServerOptions): Promise<StartedLayerServer> {
  const { socket, log } = opts;
  if (existsSync(socket)) {
    try {
      const client = await LayerServerClient.connect(socket, log);
      log.info('adopted running layer server', { socket, pid: client.pid, mounts: client.mountpoints().length });
      return { client, adopted: true };
    } catch (err) {
      log.info('no layer server answers on the socket; starting one', { socket, error: err });
    }
  }
  const args = [LAYER_SERVER_JS, '--address', socket, '--root', opts.root, '--log-level', opts.logLevel, ...(opts.configPath ? ['--config', opts.configPath] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
  child.unref();
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ?? `exit code ${code}`));
  child.once('error', (err) => (exited = err.message));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited !== undefined) throw new SgError('UNAVAILABLE', `layer server failed to start (${exited}); its log lines are above`, { socket });
    try {
      const client = await LayerServerClient.connect(socket, log);
      log.info('started layer server', { socket, pid: client.pid });
      return { client, adopted: false };
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new SgError('TIMEOUT', `layer server did not answer within ${START_TIMEOUT_MS} ms`, { socket }, { cause: err });
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
