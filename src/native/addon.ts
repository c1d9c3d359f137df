/**
 * Loads a native addon that `npm run build` compiled from native/<name>.c into build/.
 */
import { createRequire } from 'node:module';
import { SgError } from '../errors.js';

const loaded = new Map<string, unknown>();

export function loadAddon<T>(name: string): T {
  const found = loaded.get(name);
  if (found) return found as T;
  const path = new URL(`../../../build/${name}.node`, import.meta.url).pathname;
  try {
    const addon = createRequire(import.meta.url)(path) as T;
    loaded.set(name, addon);
    return addon;
  } catch (err) {
    throw new SgError('IO', 'native addon missing: run `npm run build`', { path }, { cause: err });
  }
}
