/**
 * The order entries go into the blob, as the reference `Build` decides it:
 * - landmarks already in the input are dropped, and so is `stargz.index.json`;
 * - of entries with the same clean name only the last is kept, at its own position;
 * - prioritized files come first, in the order given, each after its parent directories
 *   (and a hardlink after its target), then the landmark: `.prefetch.landmark`, or
 *   `.no.prefetch.landmark` when no files are prioritized;
 * - everything else follows in input order.
 *
 * One deliberate difference: a parent directory that is not in the tar (it is implicit)
 * does not make its prioritized file "not found", as it does in v0.12.0.
 */
import { SgError } from '../errors.js';
import { cleanName, NO_PREFETCH_LANDMARK, parentName, PREFETCH_LANDMARK, TOC_TAR_NAME } from './names.js';
import type { TarHeader } from './tar.js';

/** Stands for the landmark file in `order`. */
export const LANDMARK = -1;

export interface BlobOrder {
  /** Indexes into the input entries, with LANDMARK where the landmark goes. */
  readonly order: readonly number[];
  readonly landmark: typeof PREFETCH_LANDMARK | typeof NO_PREFETCH_LANDMARK;
  /** Prioritized names not found (only with `allowMissing`). */
  readonly missed: readonly string[];
}

export function planOrder(headers: readonly Pick<TarHeader, 'name' | 'typeflag' | 'linkName'>[], prioritized: readonly string[], allowMissing: boolean): BlobOrder {
  const live = new Map<string, number>();
  const keep = new Uint8Array(headers.length);
  headers.forEach((h, i) => {
    const name = cleanName(h.name);
    if (name === PREFETCH_LANDMARK || name === NO_PREFETCH_LANDMARK) return;
    const earlier = live.get(name);
    if (earlier !== undefined) keep[earlier] = 0;
    live.set(name, i);
    keep[i] = name === TOC_TAR_NAME ? 0 : 1;
  });

  const order: number[] = [];
  const moved = new Uint8Array(headers.length);
  const visiting = new Set<number>();
  const move = (raw: string): boolean => {
    const name = cleanName(raw);
    const i = live.get(name);
    if (name === '') {
      if (i !== undefined && !moved[i]) take(i);
      return true;
    }
    if (i === undefined) return false;
    if (moved[i] || visiting.has(i)) return true;
    visiting.add(i);
    move(parentName(name));
    const h = headers[i]!;
    const found = h.typeflag !== '1' || move(h.linkName);
    visiting.delete(i);
    if (found && !moved[i]) take(i);
    return found;
  };
  const take = (i: number) => {
    moved[i] = 1;
    if (keep[i]) order.push(i);
  };

  const missed: string[] = [];
  for (const p of prioritized) {
    if (move(p)) continue;
    if (!allowMissing) throw new SgError('INVALID_ARGUMENT', 'prioritized file not found in the input tar', { file: p });
    missed.push(p);
  }
  order.push(LANDMARK);
  for (let i = 0; i < headers.length; i++) if (keep[i] && !moved[i]) order.push(i);
  return { order, landmark: prioritized.length > 0 ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK, missed };
}
