/**
 * The native addon (native/fd-watch.c, built into build/ by `npm run build`): calls back
 * on the event loop whenever a file descriptor is readable. Its only job is waiting.
 */
import { createRequire } from 'node:module';
import { SgError } from '../errors.js';

interface Addon {
  watch(fd: number, onReadable: (status: number) => void): object;
  unwatch(handle: object): void;
}

const ADDON_PATH = new URL('../../../build/fd-watch.node', import.meta.url).pathname;
let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    return addon;
  } catch (err) {
    throw new SgError('IO', 'native addon missing: run `npm run build`', { path: ADDON_PATH }, { cause: err });
  }
}

/**
 * Calls `onReadable(0)` on the event loop each time `fd` is readable (level-triggered:
 * again next turn while unread data remains), or once `onReadable(<0 libuv error>)` if
 * polling fails. Returns the function that stops watching (idempotent).
 */
export function watchReadable(fd: number, onReadable: (status: number) => void): () => void {
  const a = load();
  let handle: object | undefined = a.watch(fd, onReadable);
  return () => {
    if (handle) a.unwatch(handle);
    handle = undefined;
  };
}
