/**
 * Merges Prometheus text from the two processes of one daemon (the gRPC daemon and its
 * layer server) into one exposition. Both load the same metric definitions and each
 * counts its own events, so our families (`stargz_…`) are summed sample by sample; the
 * process and runtime collectors' families are the first text's (the daemon's), so a
 * name never appears twice.
 */
interface Family {
  readonly name: string;
  readonly comments: string[];
  /** Sample key (name and labels) → value, in order of appearance. */
  readonly samples: Map<string, number>;
}

function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  let cur: Family | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const head = /^# (?:HELP|TYPE) (\S+)/.exec(line);
    if (head && head[1] !== cur?.name) {
      cur = { name: head[1]!, comments: [], samples: new Map() };
      out.set(cur.name, cur);
    }
    if (!cur) continue;
    if (line.startsWith('#')) {
      cur.comments.push(line);
      continue;
    }
    const at = line.lastIndexOf(' ');
    cur.samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const SUMMED = /^stargz_/;

export function mergeExpositions(first: string, second: string): string {
  const merged = families(first);
  for (const f of families(second).values()) {
    const have = merged.get(f.name);
    if (!have) merged.set(f.name, f);
    else if (SUMMED.test(f.name)) for (const [key, v] of f.samples) have.samples.set(key, (have.samples.get(key) ?? 0) + v);
  }
  const lines: string[] = [];
  for (const f of merged.values()) {
    lines.push(...f.comments);
    for (const [key, v] of f.samples) lines.push(`${key} ${formatValue(v)}`);
  }
  return lines.join('\n') + '\n';
}

const formatValue = (v: number): string => (v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));
