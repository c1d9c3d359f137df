/**
 * What the end-to-end tests and the e2e bench share: the stargz-ipfs CLI as a child
 * process, the stack (Kubo, our daemon in IPFS mode, containerd with the proxy plugin),
 * and the bench image (busybox-static; two layers of one 100 MiB random file + 150 small
 * files), byte-for-byte reproducible from a seed so that its CID is the same every run.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';

import { promisify } from 'node:util';
import type { FileSpec } from './push-fixtures.js';

const execFileAsync = promisify(execFile);
export const MAIN_JS = new URL('../../src/cli/main.js', import.meta.url).pathname;

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `stargz-ipfs args…`; resolves with the exit code instead of rejecting. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 600_000): Promise<CliRun> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [MAIN_JS, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The CID ipfs-push printed (its last stdout line), or an error with its stderr. */
export function cidOf(r: CliRun): string {
  const cid = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !/^b[a-z2-7]{20,}$/.test(cid)) throw new Error(`ipfs-push failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return cid;
}

/** `size` bytes from a seeded AES-CTR stream: incompressible and reproducible. */
export function seededBytes(size: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** One bench layer: a 100 MiB random file and 150 small text files. */
export function benchLayer(n: number, bigBytes = 100 * 1024 * 1024): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = { [`data${n}/big.bin`]: seededBytes(bigBytes, `e2e-bench-${n}`) };
  for (let i = 0; i < 150; i++) files[`data${n}/small/s${String(i).padStart(3, '0')}.txt`] = `layer ${n} file ${i}\n`.repeat(1 + (i % 40));
  return files;
}

/** Daemon config for IPFS mode. */
export function daemonConfig(extra = ''): string {
  return `ipfs = true\n${extra}`;
}

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

