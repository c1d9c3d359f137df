import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * parseArgs, but also accepting Go-style single-dash long flags (`-config x`),
 * since upstream's daemon uses Go's flag package and unit files use both forms.
 */
export function parseGoStyleFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  const normalized = args.map((a) => (/^-[a-z][a-z-]+(=.*)?$/.test(a) && a.slice(1).split('=')[0]! in options ? `-${a}` : a));
  return parseArgs({ args: normalized, options, allowPositionals: false, strict: true });
}
