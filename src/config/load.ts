/**
 * Loads config.toml: missing default file → all defaults; syntax errors, wrong types and
 * impossible values → ConfigError (one line naming the file and key; the CLI exits 2);
 * unknown keys → warnings, never fatal.
 */
import { readFile } from 'node:fs/promises';
import { parse, TomlError } from 'smol-toml';
import { TOP_LEVEL_KEYS, TABLES, EMBEDDED_TABLES, IPFS_TABLE, type Config, type KeySpec, type Mirror, type RegistryHost } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/containerd-stargz-grpc/config.toml';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    detail: string,
  ) {
    super(`${file}: ${key ? `key "${key}": ` : ''}${detail}`);
  }
}

export interface LoadedConfig {
  config: Config;
  /** Unknown keys, as dotted paths. */
  warnings: string[];
  /** The file read, or undefined when the default file was absent. */
  file: string | undefined;
}

export function defaultConfig(): Config {
  return decode({}, '<defaults>', []);
}

/** `path`: the --config flag; without it, `defaultPath` is read if it exists. */
export async function loadConfig(path: string | undefined, defaultPath = DEFAULT_CONFIG_PATH): Promise<LoadedConfig> {
  const file = path ?? defaultPath;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (path === undefined && (err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { config: defaultConfig(), warnings: [], file: undefined };
    }
    throw new ConfigError(file, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): LoadedConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error';
      throw new ConfigError(`${file}:${err.line}:${err.column}`, undefined, `invalid TOML: ${first}`);
    }
    throw err;
  }
  const warnings: string[] = [];
  return { config: decode(doc, file, warnings), warnings, file };
}

function decode(doc: Record<string, unknown>, file: string, warnings: string[]): Config {
  const out: Record<string, unknown> = {};
  const consumed = new Set<string>();
  const ipfsTable = isTable(doc[IPFS_TABLE.key]) ? (doc[IPFS_TABLE.key] as Record<string, unknown>) : undefined;
  for (const [key, spec] of Object.entries(TOP_LEVEL_KEYS)) {
    consumed.add(key);
    if (key === IPFS_TABLE.key && ipfsTable) continue;
    out[key] = value(doc, key, key, spec, file);
  }
  for (const [table, keys] of Object.entries(TABLES)) {
    const tomlName = table === IPFS_TABLE.section ? IPFS_TABLE.key : table;
    const raw = table === IPFS_TABLE.section ? ipfsTable : doc[table];
    let source: Record<string, unknown>;
    let prefix: string;
    if (raw === undefined && EMBEDDED_TABLES.includes(table as keyof typeof TABLES)) {
      source = doc;
      prefix = '';
      for (const k of Object.keys(keys)) if (k in doc && !(k in TOP_LEVEL_KEYS)) consumed.add(k);
    } else {
      if (raw !== undefined && !isTable(raw)) throw new ConfigError(file, table, `expected a table, got ${typeName(raw)}`);
      source = (raw as Record<string, unknown> | undefined) ?? {};
      prefix = `${tomlName}.`;
      consumed.add(tomlName);
      for (const k of Object.keys(source)) if (!(k in keys)) warnings.push(`${tomlName}.${k}`);
    }
    const section: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(keys) as [string, KeySpec][]) {
      section[key] = value(source, key, prefix + key, spec, file);
    }
    out[table] = section;
  }
  if (ipfsTable) out[IPFS_TABLE.key] = (out[IPFS_TABLE.section] as { enable: boolean }).enable;
  for (const k of Object.keys(doc)) if (!consumed.has(k)) warnings.push(k);
  return out as unknown as Config;
}

function value(source: Record<string, unknown>, key: string, path: string, spec: KeySpec, file: string): unknown {
  const v = source[key];
  if (v === undefined) return spec.type === 'mirrors' ? {} : spec.default;
  switch (spec.type) {
    case 'bool':
      if (typeof v !== 'boolean') throw new ConfigError(file, path, `expected a boolean, got ${typeName(v)}`);
      return v;
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(file, path, `expected an integer, got ${typeName(v)}`);
      if (v < (spec.min ?? 0)) throw new ConfigError(file, path, `must be >= ${spec.min ?? 0}, got ${v}`);
      return v;
    case 'string':
      if (typeof v !== 'string') throw new ConfigError(file, path, `expected a string, got ${typeName(v)}`);
      if (spec.oneOf && !spec.oneOf.includes(v)) throw new ConfigError(file, path, `must be one of ${spec.oneOf.map((s) => `"${s}"`).join(', ')}, got "${v}"`);
      return v;
    case 'mirrors':
      return mirrors(v, path, file);
  }
}

function mirrors(v: unknown, path: string, file: string): Record<string, RegistryHost> {
  if (!isTable(v)) throw new ConfigError(file, path, `expected a table, got ${typeName(v)}`);
  const hosts: Record<string, RegistryHost> = {};
  for (const [host, h] of Object.entries(v)) {
    const hp = `${path}."${host}"`;
    if (!isTable(h)) throw new ConfigError(file, hp, `expected a table, got ${typeName(h)}`);
    const list = h.mirrors ?? [];
    if (!Array.isArray(list)) throw new ConfigError(file, `${hp}.mirrors`, `expected an array of tables, got ${typeName(list)}`);
    hosts[host] = {
      mirrors: list.map((m: unknown, i): Mirror => {
        const mp = `${hp}.mirrors[${i}]`;
        if (!isTable(m)) throw new ConfigError(file, mp, `expected a table, got ${typeName(m)}`);
        const header: Record<string, string[]> = {};
        if (m.header !== undefined) {
          if (!isTable(m.header)) throw new ConfigError(file, `${mp}.header`, `expected a table, got ${typeName(m.header)}`);
          for (const [name, hv] of Object.entries(m.header)) {
            const vals = Array.isArray(hv) ? hv : [hv];
            if (!vals.every((x) => typeof x === 'string')) throw new ConfigError(file, `${mp}.header.${name}`, 'expected a string or an array of strings');
            header[name] = vals as string[];
          }
        }
        return {
          host: value(m, 'host', `${mp}.host`, { type: 'string', default: '' }, file) as string,
          insecure: value(m, 'insecure', `${mp}.insecure`, { type: 'bool', default: false }, file) as boolean,
          request_timeout_sec: value(m, 'request_timeout_sec', `${mp}.request_timeout_sec`, { type: 'int', default: 0, min: -1 }, file) as number,
          header,
        };
      }),
    };
  }
  return hosts;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the float ${v}`;
  if (typeof v === 'string') return `the string "${v}"`;
  if (isTable(v)) return 'a table';
  return typeof v;
}
