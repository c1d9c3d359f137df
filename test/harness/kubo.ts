/**
 * A real Kubo node for tests: temporary IPFS_PATH, Kubo's `test` profile (loopback,
 * port 0, no bootstrap peers, no mDNS), offline. Its RPC address is read back from
 * `$IPFS_PATH/api`, the same file the daemon discovers.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findTool } from './tools.js';
import { startProc, waitFor, type Proc } from './proc.js';

export interface KuboNode {
  readonly ipfsPath: string;
  readonly bin: string;
  /** http://127.0.0.1:PORT of the RPC API (changes on restart). */
  apiUrl: string;
  /** Runs the ipfs CLI against this repo. */
  cli(args: string[], input?: Uint8Array): Buffer;
  /** `ipfs add --cid-version=1 --raw-leaves --pin` of bytes → CID. */
  add(bytes: Uint8Array): string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startKubo(scratch: string, opts: { online?: boolean } = {}): Promise<KuboNode> {
  const bin = findTool('ipfs');
  const ipfsPath = join(scratch, 'ipfs');
  mkdirSync(ipfsPath, { recursive: true });
  const env = { ...process.env, IPFS_PATH: ipfsPath };
  execFileSync(bin, ['init', '--profile', 'test', '--empty-repo'], { env, stdio: 'ignore' });
  let proc: Proc | undefined;
  const node: KuboNode = {
    ipfsPath,
    bin,
    apiUrl: '',
    cli: (args, input) => execFileSync(bin, args, { env, input, maxBuffer: 1 << 30 }),
    add(bytes) {
      return node.cli(['add', '-Q', '--cid-version=1', '--raw-leaves', '--pin'], bytes).toString().trim();
    },
    async start() {
      const args = ['daemon', ...(opts.online ? [] : ['--offline'])];
      proc = startProc(bin, args, join(scratch, 'ipfs.log'), { env });
      const started = Date.now();
      node.apiUrl = await waitFor('kubo api', 30_000, async () => {
        if (proc!.child.exitCode !== null) throw new Error(`ipfs daemon exited: ${readFileSync(proc!.logPath, 'utf8').slice(-500)}`);
        const log = readFileSync(proc!.logPath, 'utf8');
        if (!log.includes('Daemon is ready')) return undefined;
        const url = apiUrlFromFile(join(ipfsPath, 'api'));
        const res = await fetch(`${url}/api/v0/version`, { method: 'POST' });
        return res.ok && (await res.arrayBuffer()) && Date.now() >= started ? url : undefined;
      });
    },
    async stop() {
      await proc?.stop('SIGTERM', 10_000);
      proc = undefined;
    },
  };
  await node.start();
  return node;
}

/** `/ip4/127.0.0.1/tcp/PORT` → http URL (only the forms the test profile writes). */
function apiUrlFromFile(path: string): string {
  const ma = readFileSync(path, 'utf8').trim();
  const m = /^\/ip4\/([^/]+)\/tcp\/(\d+)/.exec(ma);
  if (!m) throw new Error(`unexpected api multiaddr ${ma}`);
  return `http://${m[1]}:${m[2]}`;
}
