/**
 * A JSON object, as UTF-8 bytes arriving in pieces, taken apart at its top level: each
 * member is parsed alone, and the elements of one array member are parsed one by one. So
 * a 30 MB TOC never exists as one string or one object graph, only as small values that
 * die young. Taken together the pieces give what JSON.parse of the whole text gives: the
 * same values, a SyntaxError for the same texts.
 *
 * This file only finds where each value ends (strings, nesting) and checks the text
 * between values; JSON.parse checks every value. Values start and end at ASCII bytes, so
 * decoding each alone gives the same characters as decoding the whole text.
 *
 * Looking at every byte in JavaScript costs as much again as JSON.parse, so array
 * elements are first tried in batches: everything up to the piece's last `}`, wrapped in
 * `[…]`. If that parses, it is exactly the next elements (JSON is read left to right, and
 * no value that ends in `}` has a prefix that is a value too); if not, the bytes are
 * scanned one by one up to the next piece.
 */

export interface MemberSink {
  /** A top-level member other than the split array. */
  member(key: string, value: unknown): void;
  /** The split array begins (again, if its key is repeated: JSON.parse keeps the last). */
  arrayStart(): void;
  element(value: unknown): void;
}

const enum State {
  /** Before the top-level value. */
  Top,
  /** After `{`. */
  ObjectOpen,
  /** After a key. */
  Colon,
  /** After `:`. */
  Value,
  /** Inside a key, member value or element. */
  Token,
  /** After a member value. */
  AfterMember,
  /** After `,` between members. */
  NextKey,
  /** After the split array's `[`. */
  ArrayOpen,
  /** After an element. */
  AfterElement,
  /** After `,` between elements. */
  NextElement,
  /** After the top-level `}`. */
  Done,
  /** The top-level value is not an object: kept whole for JSON.parse. */
  Whole,
}

const enum Kind {
  String,
  Container,
  Primitive,
}

const enum Target {
  Key,
  Member,
  Element,
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** JSON's whitespace: space, tab, line feed, carriage return. */
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
/** Where a number, `true`, `false` or `null` ends. */
const endsPrimitive = (c: number): boolean => c === COMMA || c === CLOSE_BRACKET || c === CLOSE_BRACE || isSpace(c);

export class JsonMembers {
  private state = State.Top;
  /** Bytes of the current token (or, for Whole, of everything) from earlier pieces. */
  private held: Buffer[] = [];
  /** Where the current token starts in the current piece (0 if in an earlier one). */
  private tokenStart = 0;
  private key = '';
  private target = Target.Key;
  private kind = Kind.String;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** A batch of elements has not failed in this piece. */
  private batching = true;

  constructor(
    /** The member whose array is split into elements. */
    private readonly arrayKey: string,
    private readonly sink: MemberSink,
  ) {}

  /** The next piece of the text; throws a SyntaxError as soon as the text cannot be JSON. */
  push(piece: Buffer): void {
    let i = 0;
    this.batching = true;
    while (i < piece.length) {
      if (this.state === State.Whole) {
        this.held.push(piece.subarray(i));
        return;
      }
      if (this.state === State.Token) {
        const end = this.scanToken(piece, i);
        if (end < 0) break;
        const tail = piece.subarray(this.tokenStart, end);
        this.endToken(this.held.length === 0 ? tail : Buffer.concat([...this.held, tail]));
        i = end;
        continue;
      }
      const c = piece[i]!;
      if (isSpace(c)) {
        i++;
        continue;
      }
      i = this.structure(c, piece, i);
    }
    if (this.state === State.Token) {
      // The token goes on in the next piece.
      this.held.push(piece.subarray(this.tokenStart));
      this.tokenStart = 0;
    }
  }

  /** The end of the text: a top level that is not an object comes back parsed whole. */
  finish(): { whole: unknown } | undefined {
    if (this.state === State.Whole) return { whole: JSON.parse(Buffer.concat(this.held).toString('utf8')) as unknown };
    if (this.state !== State.Done) throw new SyntaxError('Unexpected end of JSON input');
    return undefined;
  }

  /** Handles the byte `c` at `i` between tokens; returns where to go on. */
  private structure(c: number, piece: Buffer, i: number): number {
    switch (this.state) {
      case State.Top:
        if (c === OPEN_BRACE) return this.goto(State.ObjectOpen, i + 1);
        this.state = State.Whole;
        return i;
      case State.ObjectOpen:
        if (c === CLOSE_BRACE) return this.goto(State.Done, i + 1);
        return this.startKey(c, i);
      case State.NextKey:
        return this.startKey(c, i);
      case State.Colon:
        if (c !== COLON) throw unexpected(c);
        return this.goto(State.Value, i + 1);
      case State.Value:
        if (this.key === this.arrayKey && c === OPEN_BRACKET) {
          this.sink.arrayStart();
          return this.goto(State.ArrayOpen, i + 1);
        }
        return this.startToken(Target.Member, c, i);
      case State.AfterMember:
        if (c === COMMA) return this.goto(State.NextKey, i + 1);
        if (c === CLOSE_BRACE) return this.goto(State.Done, i + 1);
        throw unexpected(c);
      case State.ArrayOpen:
        if (c === CLOSE_BRACKET) return this.goto(State.AfterMember, i + 1);
        return this.elements(c, piece, i);
      case State.NextElement:
        return this.elements(c, piece, i);
      case State.AfterElement:
        if (c === COMMA) return this.goto(State.NextElement, i + 1);
        if (c === CLOSE_BRACKET) return this.goto(State.AfterMember, i + 1);
        throw unexpected(c);
      default:
        throw unexpected(c);
    }
  }

  /** One or more elements start at `i`: a batch of them if it parses, else the first alone. */
  private elements(c: number, piece: Buffer, i: number): number {
    const end = this.batching ? piece.lastIndexOf(CLOSE_BRACE) + 1 : 0;
    if (end > i) {
      let batch: unknown;
      try {
        batch = JSON.parse('[' + piece.toString('utf8', i, end) + ']');
      } catch {
        this.batching = false;
      }
      if (this.batching) {
        for (const value of batch as unknown[]) this.sink.element(value);
        return this.goto(State.AfterElement, end);
      }
    }
    return this.startToken(Target.Element, c, i);
  }

  private goto(state: State, i: number): number {
    this.state = state;
    return i;
  }

  private startKey(c: number, i: number): number {
    if (c !== QUOTE) throw unexpected(c);
    return this.startToken(Target.Key, c, i);
  }

  /** A token starts with byte `c` at `i`; its end is looked for from the next byte. */
  private startToken(target: Target, c: number, i: number): number {
    this.target = target;
    this.kind = c === QUOTE ? Kind.String : c === OPEN_BRACE || c === OPEN_BRACKET ? Kind.Container : Kind.Primitive;
    this.depth = this.kind === Kind.Container ? 1 : 0;
    this.inString = this.kind === Kind.String;
    this.escaped = false;
    this.tokenStart = i;
    this.state = State.Token;
    return i + 1;
  }

  /** Where the current token ends in `piece` (scanning from `i`), or -1 if it goes on. */
  private scanToken(piece: Buffer, i: number): number {
    const n = piece.length;
    if (this.kind === Kind.Primitive) {
      for (; i < n; i++) if (endsPrimitive(piece[i]!)) return i;
      return -1;
    }
    let { depth, inString, escaped } = this;
    while (i < n) {
      if (inString) {
        if (escaped) {
          escaped = false;
          i++;
          continue;
        }
        // Most bytes are inside strings: run to the next quote or backslash.
        let c = piece[i]!;
        while (c !== QUOTE && c !== BACKSLASH && ++i < n) c = piece[i]!;
        if (i === n) break;
        i++;
        if (c === BACKSLASH) escaped = true;
        else {
          inString = false;
          if (depth === 0) return i;
        }
        continue;
      }
      const c = piece[i++]!;
      if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i;
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return -1;
  }

  private endToken(bytes: Buffer): void {
    this.held = [];
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    switch (this.target) {
      case Target.Key:
        this.key = value as string;
        this.state = State.Colon;
        return;
      case Target.Member:
        this.sink.member(this.key, value);
        this.state = State.AfterMember;
        return;
      case Target.Element:
        this.sink.element(value);
        this.state = State.AfterElement;
    }
  }
}

function unexpected(c: number): SyntaxError {
  return new SyntaxError(`Unexpected byte 0x${c.toString(16)} in JSON`);
}
