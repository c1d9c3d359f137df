#!/usr/bin/env node
/**
 * `stargz-ipfs`: the user CLI. Each command group lives in its own module and exports
 * `run(args): Promise<number>` (the exit code); this file only routes.
 */
import './threadpool.js';
import { errorMessage } from '../errors.js';
import { VERSION } from '../version.js';

const groups: Record<string, { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> }> = {
  estargz: { summary: 'list, verify and build eStargz blobs', load: () => import('./estargz-cmd.js') },
  image: { summary: 'publish images to IPFS (ipfs-push)', load: () => import('./image-cmd.js') },
  layer: { summary: 'mount one eStargz layer from IPFS or a file', load: () => import('./layer-cmd.js') },
};

function usage(): string {
  const lines = Object.entries(groups).map(([name, g]) => `  ${name.padEnd(10)} ${g.summary}`);
  return `usage: stargz-ipfs <group> <command> [flags]\n\ngroups:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [group, ...rest] = argv;
  if (group === '--version' || group === 'version') {
    process.stdout.write(`stargz-ipfs ${VERSION}\n`);
    return 0;
  }
  if (group === undefined || group === '--help' || group === '-h' || group === 'help') {
    process.stdout.write(usage());
    return group === undefined ? 2 : 0;
  }
  const g = groups[group];
  if (!g) {
    process.stderr.write(`stargz-ipfs: unknown command group "${group}"\n${usage()}`);
    return 2;
  }
  return (await g.load()).run(rest);
}

// A reader that stops early (`estargz list … | head`) closes the pipe: stop quietly, as
// other command-line tools do, instead of dying on an unhandled EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') process.stderr.write(`stargz-ipfs: writing output: ${errorMessage(err)}\n`);
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`stargz-ipfs: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
