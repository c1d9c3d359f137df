/**
 * Which opens of a mount are passed through to a backing file. The kernel keeps one I/O
 * mode per inode while any open of it lasts: all passthrough with one backing file, or
 * all served by READs; an open that breaks the rule fails with EIO. So the first open of
 * an inode decides, later opens while it is open follow, and the backing id lives until
 * the last RELEASE. Our count only drops on RELEASE, after the kernel's own, so it is
 * never below the kernel's and a decision we follow is never one it refuses.
 */
import type { Logger } from '../log/logger.js';
import type { BackingFiles } from './backing.js';

interface Open {
  count: number;
  /** Backing id, or undefined when this inode's opens are served by READs. */
  readonly id: Promise<number | undefined>;
}

export class PassthroughOpens {
  private readonly open = new Map<number, Open>();
  private disabled = false;

  constructor(
    private readonly backing: BackingFiles,
    /** The local file with the inode's bytes, when there is one. */
    private readonly localFile: (path: string) => Promise<string | undefined>,
    private readonly log: Logger,
  ) {}

  /** The backing id to open `nodeid` with, or undefined to serve its READs. */
  acquire(nodeid: number, path: string): Promise<number | undefined> {
    let o = this.open.get(nodeid);
    if (o) o.count++;
    else {
      o = { count: 1, id: this.disabled ? Promise.resolve(undefined) : this.register(path) };
      this.open.set(nodeid, o);
    }
    return o.id;
  }

  /** One open of `nodeid` ended; true when none of its opens remains. */
  release(nodeid: number): boolean {
    const o = this.open.get(nodeid);
    if (!o || --o.count > 0) return !o;
    this.open.delete(nodeid);
    void o.id.then((id) => {
      if (id === undefined) return;
      try {
        this.backing.release(id);
      } catch (err) {
        this.log.warn('cannot release a FUSE backing file', { id, err });
      }
    });
    return true;
  }

  private async register(path: string): Promise<number | undefined> {
    try {
      const file = await this.localFile(path);
      return file === undefined ? undefined : await this.backing.register(file);
    } catch (err) {
      // Evicted between lookup and open: this open is served by READs.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      // Anything else (no CAP_SYS_ADMIN, a cache on overlayfs: ELOOP) will fail for every
      // file: stop trying on this mount, as upstream does.
      if (!this.disabled) this.log.warn('FUSE passthrough unavailable on this mount; serving reads', { path, err });
      this.disabled = true;
      return undefined;
    }
  }
}
