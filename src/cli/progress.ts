/**
 * Push progress as plain lines on stderr (stdout carries only the CID): layers converted
 * n/N, each blob added with its CID, and bytes added to IPFS against bytes known so far,
 * the byte line at most once per interval so a large layer does not flood the terminal.
 */
import type { PushEvent, PushListener } from '../push/events.js';

export interface ProgressOptions {
  readonly intervalMs?: number;
  readonly now?: () => number;
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
const short = (digest: string): string => digest.slice(0, 'sha256:'.length + 12);

export function progressPrinter(out: { write(s: string): unknown }, opts: ProgressOptions = {}): PushListener {
  const interval = opts.intervalMs ?? 1000;
  const now = opts.now ?? Date.now;
  let lastBytes = -Infinity;
  const line = (s: string) => out.write(`${s}\n`);
  return (e: PushEvent) => {
    switch (e.type) {
      case 'start':
        return line(`pushing ${e.image}: ${e.layers} layer(s), ${e.platforms}`);
      case 'layer':
        return line(`layer ${e.index}/${e.total} ${short(e.digest)}: ${e.action === 'convert' ? 'converting to eStargz' : 'publishing as it is'}`);
      case 'layer-done':
        return line(`layer ${e.index}/${e.total} done: ${short(e.digest)} ${mib(e.size)}`);
      case 'bytes':
        if (now() - lastBytes < interval) return;
        lastBytes = now();
        return line(`added ${mib(e.added)} / ${mib(e.planned)}`);
      case 'added':
        return line(`added ${e.kind} ${short(e.digest)} ${e.size} bytes: ipfs://${e.cid}`);
      case 'stored':
        return line(`stored image ${e.image} in containerd`);
    }
  };
}
