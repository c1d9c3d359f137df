// Compiles each native/<name>.c into build/<name>.node with the C compiler directly: no
// node-gyp, so nothing is downloaded; the N-API and libuv headers ship with Node itself.
// Skips a compile when its output is newer than its source and the shared headers.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const headers = join(dirname(process.execPath), '..', 'include', 'node');
const cc = process.env.CC || 'cc';
// The shared headers count as every addon's source.
const headersMtime = Math.max(0, ...readdirSync(join(root, 'native')).filter((f) => f.endsWith('.h')).map((f) => statSync(join(root, 'native', f)).mtimeMs));

for (const name of ['chunk-decode', 'fd-watch', 'fuse-backing', 'fuse-mount']) {
  const source = join(root, `native/${name}.c`);
  const output = join(root, `build/${name}.node`);
  if (existsSync(output) && statSync(output).mtimeMs >= Math.max(statSync(source).mtimeMs, headersMtime)) continue;
  if (!existsSync(join(headers, 'node_api.h'))) {
    process.stderr.write(`build-native: no Node headers at ${headers} (they come with the nodejs package)\n`);
    process.exit(1);
  }
  mkdirSync(dirname(output), { recursive: true });
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`, '-o', output, source], { stdio: 'inherit' });
  process.stderr.write(`build-native: built ${output}\n`);
}
