/**
 * The wire between the daemon and its layer server: one JSON object per line over a unix
 * socket. Requests carry an `id`; each gets exactly one reply with the same `id`.
 * Errors travel as SgError code + message + context, so the daemon maps them to gRPC
 * codes exactly as if the layer had been mounted in-process.
 */
import { SgError, type ErrorCode, type ErrorContext } from '../errors.js';

export type Labels = Readonly<Record<string, string>>;

export type Request =
  | { readonly id: number; readonly op: 'status' }
  | { readonly id: number; readonly op: 'mount'; readonly mountpoint: string; readonly labels: Labels }
  | { readonly id: number; readonly op: 'check'; readonly mountpoint: string; readonly labels: Labels }
  | { readonly id: number; readonly op: 'unmount'; readonly mountpoint: string }
  /** Aborts the request `target` sent earlier on the same connection. */
  | { readonly id: number; readonly op: 'cancel'; readonly target: number }
  | { readonly id: number; readonly op: 'metrics' }
  /** Unmount everything and exit. */
  | { readonly id: number; readonly op: 'shutdown' };

export type Op = Request['op'];

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** What `status` answers: who serves, and every layer mounted now with its root owner. */
export interface Status {
  readonly pid: number;
  readonly version: string;
  readonly mounts: Readonly<Record<string, Owner>>;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly result?: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly context: ErrorContext;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof SgError) return { code: err.code, message: err.message, context: err.context };
  return { code: 'IO', message: err instanceof Error ? err.message : String(err), context: {} };
}

export const fromWireError = (e: WireError): SgError => new SgError(e.code, e.message, e.context);

/** Splits a byte stream into lines and hands each parsed JSON value on. */
export function lineReader(onValue: (value: unknown) => void, onBadLine: (line: string) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onBadLine(line);
        continue;
      }
      onValue(value);
    }
  };
}
