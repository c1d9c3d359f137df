#!/usr/bin/env node
/**
 * `stargz-ipfs-grpc`: the snapshotter daemon, flag-compatible with upstream's
 * containerd-stargz-grpc. Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags/config.
 */
import './threadpool.js';
import { mkdir } from 'node:fs/promises';
import { startDaemon } from '../service/daemon.js';
import { join } from 'node:path';
import { startLayerServer } from '../layer-server/start.js';
import { loadConfigForCommand } from './config-arg.js';
import { createLogger, isLevel, LEVELS } from '../log/logger.js';
import { errorMessage } from '../errors.js';
import { VERSION } from '../version.js';
import { parseGoStyleFlags } from './flags.js';
import { DEFAULT_ADDRESS, DEFAULT_ROOT } from './defaults.js';


async function main(): Promise<number> {
  let flags;
  try {
    flags = parseGoStyleFlags(process.argv.slice(2), {
      address: { type: 'string', default: DEFAULT_ADDRESS },
      config: { type: 'string' },
      root: { type: 'string', default: DEFAULT_ROOT },
      'log-level': { type: 'string', default: 'info' },
      version: { type: 'boolean', default: false },
    }).values;
  } catch (err) {
    process.stderr.write(`stargz-ipfs-grpc: ${errorMessage(err)}\n`);
    return 2;
  }
  if (flags.version) {
    process.stdout.write(`stargz-ipfs-grpc ${VERSION}\n`);
    return 0;
  }
  const level = flags['log-level'];
  if (!isLevel(level)) {
    process.stderr.write(`stargz-ipfs-grpc: --log-level must be one of ${LEVELS.join(', ')}, got "${level}"\n`);
    return 2;
  }
  const log = createLogger(level);
  const loaded = await loadConfigForCommand('stargz-ipfs-grpc', flags.config);
  if (!loaded) return 2;
  for (const key of loaded.warnings) log.warn('unknown config key ignored', { key, file: loaded.file });
  log.debug('config loaded', { file: loaded.file ?? '(defaults)', config: loaded.config });

  await mkdir(flags.root, { recursive: true, mode: 0o700 });
  const { config } = loaded;
  // Remote layers are served by a layer server in a process of its own, so that a daemon
  // killed or crashed leaves the mounts under running containers working; the next start
  // adopts them. [fuse_manager] enable only changes what a graceful stop does (below).
  const layerServer = config.ipfs
    ? (
        await startLayerServer({
          socket: config.fuse_manager.enable ? config.fuse_manager.address : join(flags.root, 'layer-server.sock'),
          root: flags.root,
          configPath: flags.config,
          logLevel: level,
          log,
        })
      ).client
    : undefined;
  let daemon;
  try {
    daemon = await startDaemon({ config, root: flags.root, address: flags.address, log, remote: layerServer, moreMetrics: layerServer && (() => layerServer.metrics()) });
  } catch (err) {
    layerServer?.close();
    throw err;
  }
  log.info('daemon started', { version: VERSION, address: flags.address, root: flags.root, layerServer: layerServer?.pid });

  // SIGINT and SIGTERM both stop gracefully and unmount every remote layer (upstream
  // without its FUSE manager does the same). With [fuse_manager] enable, SIGTERM leaves
  // the layers mounted by the layer server, as upstream's FUSE manager mode does. A
  // second signal while stopping exits at once.
  const stopped = await new Promise<NodeJS.Signals | 'layer server lost'>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    void layerServer?.lost.then(() => resolve('layer server lost'));
  });
  if (stopped === 'layer server lost') {
    // Its mounts are gone with it; a restart (systemd Restart=always) mounts them again.
    log.fatal('the layer server exited; stopping so that a restart mounts the remote snapshots again');
    await daemon.stop({ keepRemoteMounts: true });
    return 1;
  }
  log.info('stopping', { signal: stopped });
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  const keep = stopped === 'SIGTERM' && config.fuse_manager.enable;
  await daemon.stop({ keepRemoteMounts: keep });
  if (keep) layerServer?.close();
  else await layerServer?.shutdown();
  log.info('stopped', { layersKeptMounted: keep });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'fatal', msg: errorMessage(err) }) + '\n');
    process.exitCode = 1;
  },
);
