/**
 * Protobuf encoding and decoding of containerd's API messages, read from the descriptor
 * (api-descriptor.ts) field by field: no code generated at run time. Building protobufjs'
 * reflection tree and its generated codecs took ~30 ms of every `rpull`'s start-up; this
 * needs only the field tables of the messages actually used.
 *
 * Same results as protobufjs (a test compares both on every message type): a field is
 * written when present in the object (not null or undefined), in field-number order;
 * repeated numbers packed (proto3). Decoded objects have every field, as protobufjs'
 * toObject with { longs: Number, enums: String, defaults: true }: '' / 0 / false / an
 * empty Buffer / the enum's zero name / null for an absent message / [] / {}.
 * containerd's protos have no oneofs, groups, floats or fixed-width integers; a descriptor
 * that uses them is refused when its type is first used.
 */
import { API_JSON } from './api-descriptor.js';

interface JsonNamespace {
  readonly nested?: Record<string, JsonNamespace>;
  readonly methods?: Record<string, { readonly requestType: string; readonly responseType: string; readonly requestStream?: boolean; readonly responseStream?: boolean }>;
  readonly fields?: Record<string, { readonly type: string; readonly id: number; readonly rule?: string; readonly keyType?: string }>;
  readonly values?: Record<string, number>;
  readonly oneofs?: unknown;
}

type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64' | 'uint32' | 'uint64';
const SCALARS = new Set<string>(['string', 'bytes', 'bool', 'int32', 'int64', 'uint32', 'uint64']);

/** What one value of a field is: a scalar, an enum, or a message. */
type ValueType =
  | { readonly kind: 'scalar'; readonly scalar: Scalar }
  | { readonly kind: 'enum'; readonly byName: ReadonlyMap<string, number>; readonly byNumber: ReadonlyMap<number, string>; readonly zero: string }
  | { readonly kind: 'message'; readonly type: () => MessageType };

interface Field {
  readonly name: string;
  readonly id: number;
  readonly value: ValueType;
  readonly repeated: boolean;
  /** For a map field: its key type (the value type is `value`). */
  readonly mapKey?: Scalar;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;
const TWO_32 = 4294967296;

export class MessageType {
  private fieldList: Field[] | undefined;
  private fieldsById: Map<number, Field> | undefined;

  constructor(
    readonly name: string,
    private readonly json: JsonNamespace,
    private readonly scope: string,
  ) {}

  encode(obj: Record<string, unknown>): Buffer {
    const w = new Writer();
    this.write(w, obj);
    return w.finish();
  }

  decode(buf: Uint8Array): Record<string, unknown> {
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    return this.read(b, 0, b.length);
  }

  private fields(): Field[] {
    if (!this.fieldList) {
      if (this.json.oneofs) throw new Error(`protobuf: ${this.name} has oneofs, which this codec does not handle`);
      const list = Object.entries(this.json.fields ?? {}).map(([name, f]) => ({
        name,
        id: f.id,
        value: valueType(f.type, this.scope),
        repeated: f.rule === 'repeated',
        ...(f.keyType !== undefined && { mapKey: scalarOf(f.keyType) }),
      }));
      this.fieldList = list.sort((a, b) => a.id - b.id);
      this.fieldsById = new Map(list.map((f) => [f.id, f]));
    }
    return this.fieldList;
  }

  write(w: Writer, obj: Record<string, unknown>): void {
    for (const f of this.fields()) {
      const v = obj[f.name];
      if (v === null || v === undefined) continue;
      if (f.mapKey) {
        for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
          const entry = new Writer();
          writeValue(entry, 1, { kind: 'scalar', scalar: f.mapKey }, f.mapKey === 'bool' ? k === 'true' : f.mapKey === 'string' ? k : Number(k));
          if (item !== null && item !== undefined) writeValue(entry, 2, f.value, item);
          w.tag(f.id, WIRE_LEN).bytes(entry.finish());
        }
      } else if (f.repeated) {
        const items = v as unknown[];
        if (items.length === 0) continue;
        if (packable(f.value)) {
          const packed = new Writer();
          for (const item of items) writeNumber(packed, f.value, item);
          w.tag(f.id, WIRE_LEN).bytes(packed.finish());
        } else {
          for (const item of items) writeValue(w, f.id, f.value, item);
        }
      } else {
        writeValue(w, f.id, f.value, v);
      }
    }
  }

  read(b: Buffer, start: number, end: number): Record<string, unknown> {
    const fields = this.fields();
    const out: Record<string, unknown> = {};
    for (const f of fields) out[f.name] = f.mapKey ? {} : f.repeated ? [] : defaultOf(f.value);
    const r = new Reader(b, start, end);
    while (r.pos < end) {
      const key = r.varint();
      const id = Math.floor(key / 8);
      const wire = key % 8;
      const f = this.fieldsById!.get(id);
      if (!f) {
        r.skip(wire);
        continue;
      }
      if (f.mapKey) {
        const [eStart, eEnd] = r.span();
        const entry = new Reader(b, eStart, eEnd);
        let k: unknown = defaultOf({ kind: 'scalar', scalar: f.mapKey });
        let val: unknown = defaultOf(f.value);
        while (entry.pos < eEnd) {
          const ek = entry.varint();
          if (Math.floor(ek / 8) === 1) k = readValue(entry, { kind: 'scalar', scalar: f.mapKey }, ek % 8);
          else if (Math.floor(ek / 8) === 2) val = readValue(entry, f.value, ek % 8);
          else entry.skip(ek % 8);
        }
        (out[f.name] as Record<string, unknown>)[String(k)] = val;
      } else if (f.repeated) {
        const list = out[f.name] as unknown[];
        if (wire === WIRE_LEN && packable(f.value)) {
          const [pStart, pEnd] = r.span();
          const packed = new Reader(b, pStart, pEnd);
          while (packed.pos < pEnd) list.push(readValue(packed, f.value, WIRE_VARINT));
        } else {
          list.push(readValue(r, f.value, wire));
        }
      } else {
        out[f.name] = readValue(r, f.value, wire);
      }
    }
    return out;
  }
}

const types = new Map<string, MessageType>();

/** The message type `fullName` (e.g. `containerd.services.content.v1.InfoRequest`). */
export function messageType(fullName: string): MessageType {
  let t = types.get(fullName);
  if (!t) {
    const json = lookup(fullName);
    if (!json?.fields) throw new Error(`protobuf: no message ${fullName} in the descriptor`);
    t = new MessageType(fullName, json, fullName);
    types.set(fullName, t);
  }
  return t;
}

/** The message type `name` as protobuf resolves it from inside `scope` (a message or service's full name). */
export function resolveMessage(name: string, scope: string): MessageType {
  const t = valueType(name, scope);
  if (t.kind !== 'message') throw new Error(`protobuf: ${name} (from ${scope}) is not a message`);
  return t.type();
}

/** The descriptor JSON at `fullName` (a package, message, enum or service), if any. */
export function lookup(fullName: string): JsonNamespace | undefined {
  let ns: JsonNamespace | undefined = API_JSON as JsonNamespace;
  for (const part of fullName.split('.')) ns = ns?.nested?.[part];
  return ns;
}

/** Resolves a field's type name as protobuf does: from the message's own scope outwards. */
function valueType(name: string, scope: string): ValueType {
  if (SCALARS.has(name)) return { kind: 'scalar', scalar: name as Scalar };
  if (name === 'double' || name === 'float' || name.startsWith('fixed') || name.startsWith('sfixed') || name.startsWith('sint')) {
    throw new Error(`protobuf: field type ${name} is not handled by this codec`);
  }
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const full = [...parts.slice(0, i), name].join('.');
    const json = lookup(full);
    if (json?.fields) return { kind: 'message', type: () => messageType(full) };
    if (json?.values) {
      const byName = new Map(Object.entries(json.values));
      const byNumber = new Map([...byName].map(([n, v]) => [v, n] as const));
      return { kind: 'enum', byName, byNumber, zero: byNumber.get(0) ?? '' };
    }
  }
  throw new Error(`protobuf: cannot resolve type ${name} from ${scope}`);
}

function scalarOf(name: string): Scalar {
  if (!SCALARS.has(name)) throw new Error(`protobuf: map key type ${name} is not handled`);
  return name as Scalar;
}

/** Varint values (numbers, bools, enums): a repeated field of them goes packed (proto3). */
function packable(t: ValueType): boolean {
  return t.kind === 'enum' || (t.kind === 'scalar' && t.scalar !== 'string' && t.scalar !== 'bytes');
}

function defaultOf(t: ValueType): unknown {
  if (t.kind === 'message') return null;
  if (t.kind === 'enum') return t.zero;
  switch (t.scalar) {
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'bool':
      return false;
    default:
      return 0;
  }
}

function writeValue(w: Writer, id: number, t: ValueType, v: unknown): void {
  if (t.kind === 'message') {
    const sub = new Writer();
    t.type().write(sub, v as Record<string, unknown>);
    w.tag(id, WIRE_LEN).bytes(sub.finish());
  } else if (t.kind === 'scalar' && t.scalar === 'string') {
    w.tag(id, WIRE_LEN).bytes(Buffer.from(String(v), 'utf8'));
  } else if (t.kind === 'scalar' && t.scalar === 'bytes') {
    w.tag(id, WIRE_LEN).bytes(typeof v === 'string' ? Buffer.from(v, 'base64') : (v as Uint8Array));
  } else {
    w.tag(id, WIRE_VARINT);
    writeNumber(w, t, v);
  }
}

/** A varint-encoded scalar or enum (bools and numbers; enums by name or number). */
function writeNumber(w: Writer, t: ValueType, v: unknown): void {
  if (t.kind === 'enum') {
    const n = typeof v === 'number' ? v : t.byName.get(String(v));
    if (n === undefined) throw new Error(`protobuf: unknown enum value ${String(v)}`);
    w.signed(n);
  } else if (t.kind === 'scalar' && t.scalar === 'bool') {
    w.varint(v ? 1 : 0);
  } else {
    w.signed(typeof v === 'number' ? v : Number(v));
  }
}

function readValue(r: Reader, t: ValueType, wire: number): unknown {
  if (t.kind === 'message') {
    const [s, e] = r.span();
    return t.type().read(r.buf, s, e);
  }
  if (t.kind === 'scalar' && (t.scalar === 'string' || t.scalar === 'bytes')) {
    const [s, e] = r.span();
    return t.scalar === 'string' ? r.buf.toString('utf8', s, e) : r.buf.subarray(s, e);
  }
  if (wire !== WIRE_VARINT) throw new Error(`protobuf: wire type ${wire} for a varint field`);
  if (t.kind === 'enum') {
    const n = r.signed32();
    return t.byNumber.get(n) ?? n;
  }
  switch (t.scalar) {
    case 'bool':
      return r.varint() !== 0;
    case 'int32':
      return r.signed32();
    case 'int64':
      return r.signed64();
    default:
      return r.varint();
  }
}

class Writer {
  private buf = Buffer.allocUnsafe(64);
  private len = 0;

  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  tag(id: number, wire: number): this {
    return this.varint(id * 8 + wire);
  }

  /** A non-negative integer up to 2^53. */
  varint(n: number): this {
    this.reserve(10);
    while (n >= 0x80) {
      this.buf[this.len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.len++] = n;
    return this;
  }

  /** int32/int64: a negative number is its 64-bit two's complement (10 bytes). */
  signed(n: number): this {
    if (n >= 0) return this.varint(n);
    let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.varint(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }
}

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}

  /** An unsigned varint as a number (exact up to 2^53). */
  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('protobuf: message ends inside a varint');
      const byte = this.buf[this.pos++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 0x80;
    }
    throw new Error('protobuf: varint longer than 10 bytes');
  }

  /** An int64 varint (two's complement when negative). */
  signed64(): number {
    const start = this.pos;
    const n = this.varint();
    if (n < 2 ** 63) return n;
    // Negative: decode exactly.
    let v = 0n;
    let shift = 0n;
    for (let p = start; p < this.pos; p++, shift += 7n) v |= BigInt(this.buf[p]! & 0x7f) << shift;
    return Number(BigInt.asIntN(64, v));
  }

  signed32(): number {
    return this.signed64() | 0;
  }

  /** The [start, end) of a length-delimited value, moving past it. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new Error('protobuf: length past the end of the message');
    this.pos += len;
    return [start, start + len];
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) this.span();
    else if (wire === WIRE_I32) this.pos += 4;
    else throw new Error(`protobuf: cannot skip wire type ${wire}`);
    if (this.pos > this.end) throw new Error('protobuf: field past the end of the message');
  }
}
