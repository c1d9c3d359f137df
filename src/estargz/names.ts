/**
 * Entry names as the Go reader sees them: `strings.TrimPrefix(path.Clean("/"+name), "/")`,
 * so `./a/`, `/a` and `a/./b/..` all name `a`, and the root is `""`. Upstream silently
 * clamps a `..` that climbs above the root; for us such a name in a TOC is hostile, hence
 * climbsAboveRoot.
 */
const NEEDS_CLEANING = /(^|\/)\.{1,2}(\/|$)|\/\/|^\/|\/$/;

export function cleanName(raw: string): string {
  // Fast path: most names have no `.`/`..` components, doubled or trailing slashes.
  if (!NEEDS_CLEANING.test(raw)) return raw;
  const out: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '..') out.pop();
    else if (part !== '' && part !== '.') out.push(part);
  }
  return out.join('/');
}

/** Whether a `..` in `raw` would leave the root (which cleanName silently clamps). */
export function climbsAboveRoot(raw: string): boolean {
  if (!raw.includes('..')) return false;
  let depth = 0;
  for (const part of raw.split('/')) {
    if (part === '..') {
      if (depth === 0) return true;
      depth--;
    } else if (part !== '' && part !== '.') depth++;
  }
  return false;
}

/** Directory holding a clean name (`""` for top-level names and for the root itself). */
export function parentName(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

/** Last component of a clean name. */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

export const TOC_TAR_NAME = 'stargz.index.json';
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
/** Payload of both landmark files. */
export const LANDMARK_CONTENTS = 0x0f;
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
