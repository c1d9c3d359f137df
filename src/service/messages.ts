/**
 * Wire shapes of the Snapshots API messages (as proto-loader decodes them: snake_case,
 * enums as names, int64 as number) and the conversions to and from the snapshotter's types.
 */
import type { Info, Kind, Labels, Mount } from '../snapshotter/types.js';

export type WireKind = 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface WireInfo {
  name: string;
  parent: string;
  kind: WireKind;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
  labels: Labels;
}

export interface WireMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface KeyRequest {
  snapshotter: string;
  key: string;
}
export interface CreateRequest extends KeyRequest {
  parent: string;
  labels: Labels;
}
export interface CommitRequest extends KeyRequest {
  name: string;
  labels: Labels;
  parent: string;
}
export interface UpdateRequest {
  snapshotter: string;
  info: WireInfo | null;
  update_mask: { paths: string[] } | null;
}
export interface ListRequest {
  snapshotter: string;
  filters: string[];
}

const KIND_TO_WIRE: Record<Kind, WireKind> = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' };

const toTimestamp = (micros: number): Timestamp => ({ seconds: Math.floor(micros / 1e6), nanos: (micros % 1e6) * 1000 });

export function toWireInfo(info: Info): WireInfo {
  return {
    name: info.name,
    parent: info.parent,
    kind: KIND_TO_WIRE[info.kind],
    created_at: toTimestamp(info.created),
    updated_at: toTimestamp(info.updated),
    labels: { ...info.labels },
  };
}

export const toWireMounts = (mounts: readonly Mount[]): { mounts: WireMount[] } => ({
  mounts: mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: [...m.options] })),
});
