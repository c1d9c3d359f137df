/**
 * What a mounted layer offers the FUSE adapter: path-based, read-only, each failure an
 * SgError (NOT_FOUND → ENOENT, CORRUPT/UNAVAILABLE/TIMEOUT → EIO, … in src/fuse/errno.ts).
 * Nothing here knows FUSE.
 */
export interface Attr {
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly rdev: number;
  readonly blocks: number;
  readonly mtime: Date;
}

export interface DirEntry {
  readonly name: string;
  readonly attr: Attr;
}

export interface StatFs {
  readonly bsize: number;
  readonly frsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly namemax: number;
}

export interface LayerFs {
  getattr(path: string): Attr;
  readdir(path: string): readonly DirEntry[];
  readlink(path: string): string;
  /** undefined when the node has no such attribute (→ ENODATA). */
  getxattr(path: string, name: string): Buffer | undefined;
  listxattr(path: string): readonly string[];
  /** Checks that `path` is a readable regular file. */
  open(path: string): void;
  /**
   * A local file holding exactly this regular file's bytes, verified, if there is one now
   * (for FUSE passthrough); never fetches. Undefined otherwise.
   */
  wholeFile(path: string): Promise<string | undefined>;
  /** The kernel closed its last open of `path` (a moment to prepare a whole file). */
  released(path: string): void;
  /** Up to `length` bytes at `offset` (fewer only at end of file); rejects with SgError. */
  read(path: string, offset: number, length: number): Promise<Buffer>;
  statfs(): StatFs;
}
