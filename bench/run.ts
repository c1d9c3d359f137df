/**
 * `npm run bench [-- GROUP...]`: runs the named benchmark groups (all when none given).
 * Each group lives in bench/<group>.bench.ts and exports `run()`.
 */
import { readdirSync } from 'node:fs';
import { printTable } from './report.js';

const here = new URL('.', import.meta.url).pathname;
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .map((f) => f.slice(0, -'.bench.js'.length))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((g) => !available.includes(g));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark group(s): ${unknown.join(', ')}; available: ${available.join(', ')}\n`);
  process.exit(2);
}
let failed = false;
for (const group of wanted.length > 0 ? wanted : available) {
  process.stderr.write(`== ${group}\n`);
  try {
    const mod = (await import(`./${group}.bench.js`)) as { run: () => Promise<void> };
    await mod.run();
  } catch (err) {
    failed = true;
    process.stderr.write(`benchmark group ${group} failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  }
}
printTable();
process.exit(failed ? 1 : 0);
