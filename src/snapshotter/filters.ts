/**
 * containerd's filter syntax (containerd `filters` package), which `List`/`Walk` accept:
 *
 *   selectors := selector ("," selector)*      all must match
 *   selector  := fieldpath [operator value]    no operator: the field is present
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z0-9_-]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+              after "~=" also /re/ or |re|
 *   quoted    := Go string literal ("…" with \n, \x41, \u00e9 … escapes)
 *
 * Several filter strings are OR-ed. containerd's own sequence is asked for this:
 * `labels."containerd.io/snapshot.ref"==<chainID>,parent==<key>` finds the committed
 * remote snapshot after Prepare answered AlreadyExists (spec §2.2 step 4).
 *
 * Differences from Go: `~=` compiles with JavaScript RegExp (a leading `(?i)`, `(?m)` or
 * `(?s)` group is turned into a flag), and an invalid pattern is an InvalidArgument when
 * parsed, where containerd logs it and matches nothing.
 */
import { SgError } from '../errors.js';

/** Looks a field path up on the object being filtered: [value, present]. */
export type Adaptor = (fieldpath: readonly string[]) => readonly [string, boolean];

export type Filter = (adaptor: Adaptor) => boolean;

type Op = 'present' | '==' | '!=' | '~=';
interface Selector {
  readonly fieldpath: readonly string[];
  readonly op: Op;
  readonly value: string;
  readonly re?: RegExp;
}

/** Any of `filters` (an empty list matches everything). Throws SgError INVALID_ARGUMENT. */
export function parseFilters(filters: readonly string[]): Filter {
  const parsed = filters.map(parseOne);
  if (parsed.length === 0) return () => true;
  return (adaptor) => parsed.some((f) => f(adaptor));
}

function parseOne(input: string): Filter {
  if (input === '') return () => true;
  const selectors = new Parser(input).selectors();
  return (adaptor) => selectors.every((s) => matches(s, adaptor));
}

function matches(s: Selector, adaptor: Adaptor): boolean {
  const [value, present] = adaptor(s.fieldpath);
  switch (s.op) {
    case 'present':
      return present;
    case '==':
      return present && value === s.value;
    case '!=':
      return value !== s.value;
    case '~=':
      return s.re!.test(value);
  }
}

// ---- scanner: mirrors containerd's, including its quirks (a value may hold '.', '=', ':').

const EOF = 'EOF';
type Tok = 'quoted' | 'value' | 'field' | 'sep' | 'op' | 'illegal' | typeof EOF | 'other';

const isFieldChar = (c: string): boolean => /^[A-Za-z0-9_-]$/.test(c);
const isOpChar = (c: string): boolean => c === '=' || c === '!' || c === '~';
const isQuoteChar = (c: string): boolean => c === '"' || c === '/' || c === '|';
const isSpace = (c: string): boolean => /^\s$/u.test(c);
const isValueChar = (c: string): boolean => c !== ',' && !isSpace(c) && c !== '\0';

class Parser {
  private pos = 0;
  /** Set after an operator: the next bare word is a value, not a field. */
  private inValue = false;
  private readonly chars: string[];

  constructor(private readonly input: string) {
    this.chars = [...input];
  }

  selectors(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const c = this.peek();
      if (c === EOF) return out;
      if (c !== ',') throw this.error(this.pos, `unexpected input: ${c}`);
      this.scan();
      out.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const next = this.peek();
    if (next === ',' || next === EOF) return { fieldpath, op: 'present', value: '' };
    const [pos, tok, text] = this.scan();
    if (tok !== 'op' || (text !== '==' && text !== '!=' && text !== '~=')) {
      throw this.error(pos, tok === 'op' ? `unsupported operator "${text}"` : 'expected an operator ("=="|"!="|"~=")');
    }
    const op: Op = text;
    const value = this.value(op === '~=');
    if (op !== '~=') return { fieldpath, op, value };
    return { fieldpath, op, value, re: compileRegExp(value, () => this.error(pos, `invalid regular expression ${JSON.stringify(value)}`)) };
  }

  private fieldpath(): string[] {
    const out = [this.field()];
    while (this.peek() === '.') {
      this.scan();
      out.push(this.field());
    }
    return out;
  }

  private field(): string {
    const [pos, tok, text] = this.scan();
    if (tok === 'field') return text;
    if (tok === 'quoted') return this.unquote(pos, text, false);
    throw this.error(pos, 'expected field or quoted');
  }

  private value(allowAltQuotes: boolean): string {
    const [pos, tok, text] = this.scan();
    if (tok === 'value' || tok === 'field') return text;
    if (tok === 'quoted') return this.unquote(pos, text, allowAltQuotes);
    throw this.error(pos, tok === EOF ? 'unexpected end of input' : 'expected value or quoted');
  }

  private unquote(pos: number, text: string, allowAlt: boolean): string {
    if (!allowAlt && text[0] !== '"') throw this.error(pos, 'invalid quote encountered');
    const out = unquoteGo(text);
    if (out === undefined) throw this.error(pos, 'unquoting failed: quote syntax error');
    return out;
  }

  private peek(): string {
    return this.chars[this.pos] ?? EOF;
  }

  private scan(): [number, Tok, string] {
    while (this.pos < this.chars.length && isSpace(this.chars[this.pos]!)) this.pos++;
    const start = this.pos;
    const c = this.chars[this.pos];
    if (c === undefined) return [start, EOF, ''];
    const take = (pred: (ch: string) => boolean): string => {
      while (this.pos < this.chars.length && pred(this.chars[this.pos]!)) this.pos++;
      return this.chars.slice(start, this.pos).join('');
    };
    this.pos++;
    if (c === '\0') return [start, 'illegal', c];
    if (isQuoteChar(c)) return this.scanQuoted(start, c);
    if (c === ',' || c === '.') {
      this.inValue = false;
      return [start, 'sep', c];
    }
    if (isOpChar(c)) {
      this.inValue = true;
      return [start, 'op', take(isOpChar)];
    }
    if (this.inValue) {
      this.inValue = false;
      return [start, 'value', take(isValueChar)];
    }
    if (isFieldChar(c)) return [start, 'field', take(isFieldChar)];
    return [start, 'other', c];
  }

  private scanQuoted(start: number, quote: string): [number, Tok, string] {
    while (this.pos < this.chars.length) {
      const c = this.chars[this.pos++]!;
      if (c === '\n') break;
      if (c === '\\') {
        this.pos++;
        continue;
      }
      if (c === quote) return [start, 'quoted', this.chars.slice(start, this.pos).join('')];
    }
    throw this.error(start, 'quoted literal not terminated');
  }

  private error(pos: number, msg: string): SgError {
    const at = this.chars.length > pos ? `[${this.chars.slice(0, pos).join('')} >|${this.chars[pos]}|< ${this.chars.slice(pos + 1).join('')}]` : `[${this.input}]`;
    return new SgError('INVALID_ARGUMENT', `filters: parse error: ${at}: ${msg}`, { filter: this.input });
  }
}

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** Go's strconv.Unquote for "…", extended (as containerd does) to /…/ and |…|. */
function unquoteGo(text: string): string | undefined {
  const quote = text[0]!;
  if (text.length < 2 || text[text.length - 1] !== quote) return undefined;
  const body = text.slice(1, -1);
  if (body.includes('\n')) return undefined;
  const bytes: number[] = [];
  const pushString = (s: string) => bytes.push(...Buffer.from(s, 'utf8'));
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === quote) return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushString(ch);
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) return undefined;
    i += 2;
    if (e in SIMPLE_ESCAPES) {
      pushString(SIMPLE_ESCAPES[e]!);
    } else if (e === quote) {
      pushString(e);
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) return undefined;
      const v = parseInt(hex, 16);
      i += n;
      if (e === 'x') bytes.push(v);
      else if (v > 0x10ffff) return undefined;
      else pushString(String.fromCodePoint(v));
    } else if (/[0-7]/.test(e)) {
      const oct = e + body.slice(i, i + 2);
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) return undefined;
      bytes.push(parseInt(oct, 8));
      i += 2;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function compileRegExp(pattern: string, fail: () => SgError): RegExp {
  const m = /^\(\?([ims]+)\)/.exec(pattern);
  try {
    return m ? new RegExp(pattern.slice(m[0].length), m[1]) : new RegExp(pattern);
  } catch {
    throw fail();
  }
}
