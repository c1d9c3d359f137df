#!/usr/bin/env node
/**
 * The layer server: the process that serves the FUSE mounts of remote snapshots for
 * `stargz-ipfs-grpc` (upstream's stargz-fuse-manager). The daemon starts it detached and
 * talks to it over `--address`; it is not meant to be run by hand. It exits after
 * unmounting everything, when the daemon asks or on SIGINT/SIGTERM.
 */
import './threadpool.js';
import { errorMessage } from '../errors.js';
import { createLogger, isLevel } from '../log/logger.js';
import { registry } from '../metrics/metrics.js';
import { serveLayers } from '../layer-server/server.js';
import { loadConfigForCommand } from './config-arg.js';
import { parseGoStyleFlags } from './flags.js';
import { startIpfsLayers } from './remote-layers.js';

async function main(): Promise<number> {
  const flags = parseGoStyleFlags(process.argv.slice(2), {
    address: { type: 'string' },
    config: { type: 'string' },
    root: { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
  }).values;
  const level = flags['log-level'];
  if (!flags.address || !flags.root || !isLevel(level)) {
    process.stderr.write('stargz-ipfs layer server: needs --address, --root and a valid --log-level\n');
    return 2;
  }
  // It outlives the daemon and the terminal that started it: a closed stderr must not
  // kill it, and its working directory must not pin a mount.
  process.stderr.on('error', () => {});
  process.chdir('/');
  const log = createLogger(level).child({ component: 'layer-server' });
  const loaded = await loadConfigForCommand('stargz-ipfs layer server', flags.config);
  if (!loaded) return 2;
  const ipfs = await startIpfsLayers(loaded.config, flags.root, log);
  const { layers } = ipfs;
  const unmountAll = async () => {
    for (const mp of layers.mountpoints()) {
      await layers.unmount(mp).catch((err: unknown) => log.warn('failed to unmount layer', { mountpoint: mp, error: err }));
    }
  };
  // Everything is released before the daemon's shutdown request is answered: a daemon
  // that exits (and a caller that then deletes --root) must not race the cache's close.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await unmountAll();
      await ipfs.close();
    })());
  const server = await serveLayers({ layers, socket: flags.address, metrics: () => registry.metrics(), shutdown: stop, log });
  const reason = await Promise.race([
    server.shutdownRequested.then(() => 'requested by the daemon'),
    new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    }),
  ]);
  log.info('layer server stopping', { reason });
  await stop();
  await server.close();
  log.info('layer server stopped');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'fatal', component: 'layer-server', msg: errorMessage(err) }) + '\n');
    process.exitCode = 1;
  },
);
