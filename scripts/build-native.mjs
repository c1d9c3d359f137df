// Compiles native/fd-watch.c into build/fd-watch.node with the C compiler directly: no
// node-gyp, so nothing is downloaded; the N-API and libuv headers ship with Node itself.
// Skips the compile when the output is newer than the source.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const source = join(root, 'native/fd-watch.c');
const output = join(root, 'build/fd-watch.node');
const headers = join(dirname(process.execPath), '..', 'include', 'node');

if (existsSync(output) && statSync(output).mtimeMs >= statSync(source).mtimeMs) process.exit(0);
if (!existsSync(join(headers, 'node_api.h'))) {
  process.stderr.write(`build-native: no Node headers at ${headers} (they come with the nodejs package)\n`);
  process.exit(1);
}
mkdirSync(dirname(output), { recursive: true });
const cc = process.env.CC || 'cc';
execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`, '-o', output, source], { stdio: 'inherit' });
process.stderr.write(`build-native: built ${output}\n`);
