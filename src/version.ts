import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (above dist/src; three levels from the bundled CLI in dist/src/cli). */
export const VERSION: string = (() => {
  for (const rel of ['../../package.json', '../../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'stargz-ipfs' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return 'unknown';
})();
