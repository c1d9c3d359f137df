/** Helper process for the reaper test: leaves a Kubo daemon and a mount behind, then waits to be SIGKILLed. */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeScratch } from './scratch.js';
import { startKubo } from './kubo.js';

const scratch = makeScratch();
const kubo = await startKubo(scratch);
const mnt = join(scratch, 'mnt');
mkdirSync(mnt);
execFileSync('mount', ['-t', 'tmpfs', 'sgt-crash', mnt]);
process.stdout.write(JSON.stringify({ scratch, api: kubo.apiUrl }) + '\n');
setInterval(() => {}, 1 << 30);
