/**
 * The native addon (native/fd-watch.c, built into build/ by `npm run build`): calls back
 * on the event loop whenever a file descriptor is readable. Its only job is waiting.
 */
import { loadAddon } from '../native/addon.js';

interface Addon {
  watch(fd: number, onReadable: (status: number) => void): object;
  unwatch(handle: object): void;
}

/**
 * Calls `onReadable(0)` on the event loop each time `fd` is readable (level-triggered:
 * again next turn while unread data remains), or once `onReadable(<0 libuv error>)` if
 * polling fails. Returns the function that stops watching (idempotent).
 */
export function watchReadable(fd: number, onReadable: (status: number) => void): () => void {
  const a = loadAddon<Addon>('fd-watch');
  let handle: object | undefined = a.watch(fd, onReadable);
  return () => {
    if (handle) a.unwatch(handle);
    handle = undefined;
  };
}
