import os from 'node:os';

export type Unit = 's' | 'MB/s' | 'ops/s' | 'MiB' | 'ms' | 'MB';

export interface Figure {
  bench: string;
  value: number;
  unit: Unit;
  baseline: number | null;
  /** value / baseline, or null without a baseline. */
  ratio: number | null;
  target: string;
}

const rows: Figure[] = [];

/** One JSON line on stdout per figure; the human table goes to stderr at the end. */
export function emit(f: Omit<Figure, 'ratio'> & { ratio?: number | null }): void {
  const ratio = f.ratio !== undefined ? f.ratio : f.baseline ? round(f.value / f.baseline) : null;
  const fig: Figure = { bench: f.bench, value: round(f.value), unit: f.unit, baseline: f.baseline === null ? null : round(f.baseline), ratio, target: f.target };
  rows.push(fig);
  process.stdout.write(JSON.stringify(fig) + '\n');
}

export function printTable(): void {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  process.stderr.write(`\n${os.type()} ${os.release()} · ${os.cpus().length} × ${cpu} · node ${process.version}\n`);
  const w = Math.max(10, ...rows.map((r) => r.bench.length));
  process.stderr.write(`${'bench'.padEnd(w)}  ${'value'.padStart(12)} unit   ${'baseline'.padStart(12)} ${'ratio'.padStart(7)}  target\n`);
  for (const r of rows) {
    process.stderr.write(
      `${r.bench.padEnd(w)}  ${String(r.value).padStart(12)} ${r.unit.padEnd(6)} ${String(r.baseline ?? '-').padStart(12)} ${String(r.ratio ?? '-').padStart(7)}  ${r.target}\n`,
    );
  }
}

export function round(n: number): number {
  return Math.abs(n) >= 100 ? Math.round(n * 10) / 10 : Math.round(n * 1000) / 1000;
}

/** Peak resident set size of this process so far, MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
