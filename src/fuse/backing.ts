/**
 * FUSE passthrough backing files (kernel >= 6.9): a file registered here gets an id that
 * an OPEN reply may name, after which the kernel reads that open file straight from the
 * backing file and this process sees no READ for it. Registration needs CAP_SYS_ADMIN
 * and a backing file no deeper in a filesystem stack than the mount allows (we allow 1:
 * plain disks, not overlayfs), so every call may fail; callers then serve reads
 * themselves.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { loadAddon } from '../native/addon.js';

interface Addon {
  open(fuseFd: number, fileFd: number): number;
  close(fuseFd: number, id: number): void;
}

export class BackingFiles {
  constructor(private readonly fuseFd: number) {}

  /** Registers the file at `path` (opened read-only) and returns its backing id. */
  async register(path: string): Promise<number> {
    const addon = loadAddon<Addon>('fuse-backing');
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'r');
      // The kernel holds its own reference to the file from here on.
      return addon.open(this.fuseFd, file.fd);
    } finally {
      await file?.close();
    }
  }

  /** Drops the id; files already open with it keep reading from it. */
  release(id: number): void {
    loadAddon<Addon>('fuse-backing').close(this.fuseFd, id);
  }
}
