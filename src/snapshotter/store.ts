/**
 * Snapshot metadata in SQLite (better-sqlite3): the semantics of containerd's
 * storage.MetaStore (core/snapshots/storage/bolt.go) in one table.
 *
 * Crash safety: WAL journal with synchronous=NORMAL. A transaction that returned is in the
 * WAL (in the kernel's page cache), so it survives kill -9 of the daemon; one cut short is
 * rolled back at the next open. A power loss may drop the last transactions but never
 * corrupts the file. FULL would add an fsync of about 1 ms to every transaction, which
 * made Prepare/Commit through containerd twice as slow as its overlayfs snapshotter
 * (bench/snapshotter.bench.ts). Ids come from
 * AUTOINCREMENT and are never reused, so a directory named after a removed snapshot can
 * never be mistaken for a new one.
 *
 * Every method runs synchronously; callers group them with `tx()` so that a check and the
 * write that depends on it cannot interleave with another request.
 */
import Database from 'better-sqlite3';
import { SgError } from '../errors.js';
import type { Filter } from './filters.js';
import { MAX_LABEL_BYTES, nowMicros, type Info, type Kind, type Labels, type Usage } from './types.js';

/** An active or view snapshot as the mount builder needs it. */
export interface Snapshot {
  readonly id: string;
  readonly kind: Kind;
  /** Ids of the parent chain, immediate parent first. */
  readonly parentIds: readonly string[];
}

/** One link of a chain: enough to check remote layers. */
export interface ChainLink {
  readonly id: string;
  readonly labels: Readonly<Labels>;
}

interface Row {
  id: number;
  name: string;
  kind: Kind;
  parent_id: number | null;
  parent_name: string | null;
  labels: string;
  created: number;
  updated: number;
  size: number;
  inodes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  name      TEXT    NOT NULL UNIQUE,
  kind      TEXT    NOT NULL CHECK (kind IN ('view', 'active', 'committed')),
  parent_id INTEGER REFERENCES snapshots(id),
  labels    TEXT    NOT NULL DEFAULT '{}',
  created   INTEGER NOT NULL,
  updated   INTEGER NOT NULL,
  size      INTEGER NOT NULL DEFAULT 0,
  inodes    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

const SELECT = `SELECT s.*, p.name AS parent_name FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/** A snapshot and its ancestors, nearest first, in one query. */
const CHAIN = `
WITH RECURSIVE chain(id, parent_id, labels, depth) AS (
  SELECT id, parent_id, labels, 0 FROM snapshots WHERE id = ?
  UNION ALL
  SELECT s.id, s.parent_id, s.labels, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
)
SELECT id, labels FROM chain ORDER BY depth`;

export class MetaStore {
  private readonly db: Database.Database;
  private readonly q;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    this.q = {
      byName: this.db.prepare<[string], Row>(`${SELECT} WHERE s.name = ?`),
      chain: this.db.prepare<[number], { id: number; labels: string }>(CHAIN),
      all: this.db.prepare<[], Row>(`${SELECT} ORDER BY s.id`),
      ids: this.db.prepare<[], { id: number }>('SELECT id FROM snapshots').pluck(),
      hasChild: this.db.prepare<[number], number>('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').pluck(),
      insert: this.db.prepare('INSERT INTO snapshots (name, kind, parent_id, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)'),
      commit: this.db.prepare('UPDATE snapshots SET name = ?, kind = ?, parent_id = ?, labels = ?, created = ?, updated = ?, size = ?, inodes = ? WHERE id = ?'),
      setLabels: this.db.prepare('UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?'),
      delete: this.db.prepare('DELETE FROM snapshots WHERE id = ?'),
    };
  }

  /** Runs `fn` as one transaction: all of its writes land, or none. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Info, usage and id of a snapshot of any kind. */
  getInfo(key: string): { id: string; info: Info; usage: Usage } {
    const row = this.row(key);
    return { id: String(row.id), info: toInfo(row), usage: { size: row.size, inodes: row.inodes } };
  }

  /** An active or view snapshot with its parent chain (containerd's GetSnapshot). */
  getSnapshot(key: string): Snapshot {
    const row = this.row(key);
    if (row.kind === 'committed') {
      throw new SgError('FAILED_PRECONDITION', `requested snapshot ${key} not active or view`, { key });
    }
    return { id: String(row.id), kind: row.kind, parentIds: this.chainFrom(row.parent_id).map((l) => l.id) };
  }

  /** The snapshot `key` (when `includeSelf`) and all its ancestors, nearest first. */
  chain(key: string, includeSelf: boolean): ChainLink[] {
    const row = this.row(key);
    const parents = this.chainFrom(row.parent_id);
    return includeSelf ? [{ id: String(row.id), labels: parseLabels(row.labels) }, ...parents] : parents;
  }

  createSnapshot(kind: 'active' | 'view', key: string, parent: string, labels: Labels): Snapshot {
    let parentRow: Row | undefined;
    if (parent !== '') {
      parentRow = this.q.byName.get(parent);
      if (!parentRow) throw new SgError('NOT_FOUND', `missing parent "${parent}"`, { key, parent });
      if (parentRow.kind !== 'committed') {
        throw new SgError('INVALID_ARGUMENT', `parent "${parent}" is not committed snapshot`, { key, parent });
      }
    }
    if (this.q.byName.get(key)) throw new SgError('ALREADY_EXISTS', `snapshot ${key}: already exists`, { key });
    const t = nowMicros();
    const { lastInsertRowid } = this.q.insert.run(key, kind, parentRow?.id ?? null, encodeLabels(labels), t, t);
    return { id: String(lastInsertRowid), kind, parentIds: parentRow ? this.chainFrom(parentRow.id).map((l) => l.id) : [] };
  }

  /**
   * Turns active snapshot `key` into committed snapshot `name` (same id). Labels are
   * replaced, not inherited. A snapshot created without a parent may be rebased on
   * `parent` (containerd 2.x parallel unpack); changing an existing parent is refused.
   */
  commitActive(key: string, name: string, usage: Usage, labels: Labels, parent = ''): string {
    if (this.q.byName.get(name)) throw new SgError('ALREADY_EXISTS', `committed snapshot ${name}: already exists`, { key, name });
    const row = this.q.byName.get(key);
    if (!row) throw new SgError('NOT_FOUND', `failed to get active snapshot "${key}"`, { key });
    if (row.kind !== 'active') throw new SgError('FAILED_PRECONDITION', `snapshot "${key}" is not active`, { key });
    let parentId = row.parent_id;
    if (parent !== '' && parent !== (row.parent_name ?? '')) {
      if (row.parent_id !== null) {
        throw new SgError('INVALID_ARGUMENT', `cannot change parent of active snapshot "${key}" on commit`, { key, parent });
      }
      const p = this.q.byName.get(parent);
      if (!p) throw new SgError('NOT_FOUND', `missing parent "${parent}" of snapshot "${key}"`, { key, parent });
      if (p.kind !== 'committed') throw new SgError('FAILED_PRECONDITION', `parent "${parent}" is not committed`, { key, parent });
      parentId = p.id;
    }
    const t = nowMicros();
    this.q.commit.run(name, 'committed', parentId, encodeLabels(labels), t, t, usage.size, usage.inodes, row.id);
    return String(row.id);
  }

  /** Deletes the record of `key`; refused while another snapshot names it as parent. */
  remove(key: string): { id: string; kind: Kind; labels: Labels } {
    const row = this.row(key);
    if (this.q.hasChild.get(row.id)) {
      throw new SgError('FAILED_PRECONDITION', `cannot remove snapshot with child: ${key}`, { key });
    }
    this.q.delete.run(row.id);
    return { id: String(row.id), kind: row.kind, labels: parseLabels(row.labels) };
  }

  /**
   * Updates the mutable part of an Info: `labels` (replace all) or `labels.<key>` (one
   * label; absent in `info` = delete). No paths = all mutable fields. Any other path is
   * an InvalidArgument: name, parent, kind and created never change.
   */
  updateInfo(info: Pick<Info, 'name' | 'labels'>, paths: readonly string[]): Info {
    const row = this.row(info.name);
    const all = () => new Map(Object.entries(info.labels));
    let labels = paths.length === 0 ? all() : new Map(Object.entries(parseLabels(row.labels)));
    for (const path of paths) {
      if (path.startsWith('labels.')) {
        const k = path.slice('labels.'.length);
        labels.set(k, Object.hasOwn(info.labels, k) ? info.labels[k]! : '');
      } else if (path === 'labels') {
        labels = all();
      } else {
        throw new SgError('INVALID_ARGUMENT', `cannot update "${path}" field on snapshot "${info.name}"`, { key: info.name, path });
      }
    }
    const t = nowMicros();
    const stored = encodeLabels(labels);
    this.q.setLabels.run(stored, t, row.id);
    return { ...toInfo(row), labels: parseLabels(stored), updated: t };
  }

  has(name: string): boolean {
    return this.q.byName.get(name) !== undefined;
  }

  /** Snapshots that pass `filter`, with their ids, in creation order. */
  walk(filter: Filter): { id: string; info: Info }[] {
    const out: { id: string; info: Info }[] = [];
    for (const row of this.q.all.iterate()) {
      const info = toInfo(row);
      if (filter(adapt(info))) out.push({ id: String(row.id), info });
    }
    return out;
  }

  /** Ids of every snapshot, as directory names. */
  ids(): Set<string> {
    return new Set((this.q.ids.all() as unknown as number[]).map(String));
  }

  private row(key: string): Row {
    const row = this.q.byName.get(key);
    if (!row) throw new SgError('NOT_FOUND', `snapshot ${key} does not exist`, { key });
    return row;
  }

  private chainFrom(id: number | null): ChainLink[] {
    if (id === null) return [];
    return this.q.chain.all(id).map((r) => ({ id: String(r.id), labels: parseLabels(r.labels) }));
  }
}

/**
 * Labels as stored: empty values are dropped (containerd stores none, so `labels.k`
 * with no value in an update deletes k), and each pair must fit containerd's limit.
 */
function encodeLabels(labels: Readonly<Labels> | ReadonlyMap<string, string>): string {
  const out: Labels = {};
  for (const [k, v] of labels instanceof Map ? labels : Object.entries(labels)) {
    if (v === '') continue;
    const bytes = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (bytes > MAX_LABEL_BYTES) {
      throw new SgError('INVALID_ARGUMENT', `label key and value length (${bytes} bytes) greater than maximum size (${MAX_LABEL_BYTES} bytes)`, { label: k });
    }
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return JSON.stringify(out);
}

function parseLabels(json: string): Labels {
  return JSON.parse(json) as Labels;
}

function toInfo(row: Row): Info {
  return {
    name: row.name,
    parent: row.parent_name ?? '',
    kind: row.kind,
    created: row.created,
    updated: row.updated,
    labels: parseLabels(row.labels),
  };
}

/** The fields a filter can see (containerd's adaptSnapshot). */
function adapt(info: Info) {
  return (fieldpath: readonly string[]): readonly [string, boolean] => {
    switch (fieldpath[0]) {
      case 'kind':
        return [info.kind, true];
      case 'name':
        return [info.name, true];
      case 'parent':
        return [info.parent, true];
      case 'labels': {
        const k = fieldpath.slice(1).join('.');
        return Object.hasOwn(info.labels, k) ? [info.labels[k]!, true] : ['', false];
      }
      default:
        return ['', false];
    }
  };
}
