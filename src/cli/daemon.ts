#!/usr/bin/env node
/**
 * `stargz-ipfs-grpc`: the snapshotter daemon, flag-compatible with upstream's
 * containerd-stargz-grpc. Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags/config.
 */
import './threadpool.js';
import { mkdir } from 'node:fs/promises';
import { startDaemon } from '../service/daemon.js';
import { startIpfsLayers } from './remote-layers.js';
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
  const ipfs = loaded.config.ipfs ? await startIpfsLayers(loaded.config, flags.root, log) : undefined;
  const daemon = await startDaemon({ config: loaded.config, root: flags.root, address: flags.address, log, remote: ipfs?.layers });
  log.info('daemon started', { version: VERSION, address: flags.address, root: flags.root });

  // SIGINT and SIGTERM both stop gracefully (upstream without its FUSE manager does the
  // same); a second signal while stopping exits at once.
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log.info('stopping', { signal });
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await daemon.stop();
  await ipfs?.close();
  log.info('stopped');
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
