/**
 * Structured logs: one JSON object per line on stderr. Disabled levels are resolved
 * once when the logger is built (pino's trick), so a disabled debug call costs a no-op.
 */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type Level = (typeof LEVELS)[number];

export type Fields = Record<string, unknown>;
type LogFn = (msg: string, fields?: Fields) => void;

export interface Logger {
  readonly level: Level;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  enabled(level: Level): boolean;
  child(fields: Fields): Logger;
}

export interface Sink {
  write(line: string): unknown;
}

export function isLevel(s: string): s is Level {
  return (LEVELS as readonly string[]).includes(s);
}

const noop: LogFn = () => {};

export function createLogger(level: Level = 'info', sink: Sink = process.stderr, bound: Fields = {}): Logger {
  const min = LEVELS.indexOf(level);
  const make = (l: Level): LogFn => {
    if (LEVELS.indexOf(l) < min) return noop;
    return (msg, fields) => {
      const rec: Fields = { time: new Date().toISOString(), level: l, msg, ...bound, ...fields };
      sink.write(JSON.stringify(rec, replacer) + '\n');
    };
  };
  return {
    level,
    trace: make('trace'),
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    fatal: make('fatal'),
    enabled: (l) => LEVELS.indexOf(l) >= min,
    child: (fields) => createLogger(level, sink, { ...bound, ...fields }),
  };
}

/** Errors and bigints do not serialise by default; keep the useful parts. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const out: Fields = { message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    const ctx = (value as { context?: unknown }).context;
    if (ctx !== undefined) out.context = ctx;
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Logger for library code that was given none: warnings and worse only. */
export const quietLogger: Logger = createLogger('warn');
