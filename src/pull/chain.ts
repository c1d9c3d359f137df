/** Layer chain IDs, as the OCI image spec defines them: the names of unpacked snapshots. */
import { createHash } from 'node:crypto';

/** chainID(0) = diffID(0); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out.at(-1);
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** containerd's unpack key: `extract-<nanos>-<random> <chainID>` (unique per attempt). */
export function unpackKey(chainId: string): string {
  const nanos = Number(process.hrtime.bigint() % 1_000_000_000n);
  const random = Buffer.from(Array.from({ length: 3 }, () => Math.floor(Math.random() * 256))).toString('base64url');
  return `extract-${nanos}-${random} ${chainId}`;
}
