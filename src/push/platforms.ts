/**
 * Which manifests of an index a push keeps (spec §1.8): all (`--all-platforms`), those
 * matching any of a list (`--platform`), or by default exactly the host's platform
 * (containerd's `platforms.DefaultStrict()`: no older variants, no 386 on amd64).
 * Entries without a platform are kept, as containerd's converter keeps them.
 */
import { SgError } from '../errors.js';
import type { Platform } from '../ipfs/oci.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../ipfs/platform.js';

export interface PlatformFilter {
  matches(p: Platform | undefined): boolean;
  /** For messages: `all platforms`, `linux/amd64`, `linux/amd64, linux/arm64/v8`. */
  readonly describe: string;
}

/** `os/arch/variant` with aliases and default variants resolved (parsePlatform normalizes). */
const normalized = (p: Platform): string => {
  const text = formatPlatform(p);
  const n = parsePlatform(text);
  return n ? formatPlatform(n) : text.toLowerCase();
};

/** `platforms`: `os/arch[/variant]` texts; invalid ones are INVALID_ARGUMENT. */
export function platformFilter(opts: { all?: boolean; platforms?: readonly string[] }): PlatformFilter {
  if (opts.all) return { matches: () => true, describe: 'all platforms' };
  const texts = opts.platforms && opts.platforms.length > 0 ? opts.platforms : [formatPlatform(hostPlatform())];
  const keys = new Set(
    texts.map((t) => {
      const p = parsePlatform(t);
      if (!p) throw new SgError('INVALID_ARGUMENT', `invalid platform "${t}" (expected os/arch[/variant])`, { platform: t });
      return normalized(p);
    }),
  );
  return {
    matches: (p) => p === undefined || keys.has(normalized(p)),
    describe: texts.join(', '),
  };
}
