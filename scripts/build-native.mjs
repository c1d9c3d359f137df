// Compiles each native/<name>.c into build/<name>.node with the C compiler directly: no
// node-gyp, so nothing is downloaded; the N-API and libuv headers ship with Node itself.
// Skips a compile when its output is newer than its source.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const headers = join(dirname(process.execPath), '..', 'include', 'node');
const cc = process.env.CC || 'cc';

for (const name of ['fd-watch', 'fuse-backing', 'fuse-mount']) {
  const source = join(root, `native/${name}.c`);
  const output = join(root, `build/${name}.node`);
  if (existsSync(output) && statSync(output).mtimeMs >= statSync(source).mtimeMs) continue;
  if (!existsSync(join(headers, 'node_api.h'))) {
    process.stderr.write(`build-native: no Node headers at ${headers} (they come with the nodejs package)\n`);
    process.exit(1);
  }
  mkdirSync(dirname(output), { recursive: true });
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`, '-o', output, source], { stdio: 'inherit' });
  process.stderr.write(`build-native: built ${output}\n`);
}
