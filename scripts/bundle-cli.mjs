// Bundles the user CLI (dist/src/cli/main.js, the `stargz-ipfs` bin) into that same file,
// after tsc: one file to read and compile instead of ~100 modules, 20–25 ms of an `rpull`'s
// start-up when the page cache is cold (e2e bench: start-up and module load 121–125 → 100 ms).
// The daemon and the other modules stay as tsc wrote them (tests import them one by one).
// Without esbuild (a devDependency) the unbundled main.js stays and works, only slower.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const entry = join(root, 'dist/src/cli/main.js');
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write('bundle-cli: esbuild not installed; dist/src/cli/main.js left unbundled\n');
  process.exit(0);
}
if (!existsSync(entry)) {
  process.stderr.write(`bundle-cli: ${entry} missing (run tsc first)\n`);
  process.exit(1);
}
await esbuild.build({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Native code and what only the daemon needs stay in node_modules.
  external: ['better-sqlite3', '@grpc/grpc-js'],
  logLevel: 'warning',
});
