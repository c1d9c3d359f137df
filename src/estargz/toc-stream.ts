/**
 * TOC JSON bytes → checked entries while the TOC is still being inflated. Each element of
 * `entries` is parsed, checked and handed on alone, so neither the text nor the parsed
 * TOC of a 100k-entry layer ever exists at once (tens of MB of garbage per layer, which
 * V8 keeps for a while after it dies).
 *
 * finish() fails as decodeToc(JSON.parse(text)) would: invalid JSON (a SyntaxError)
 * first, then the checks of the TOC object, then the first bad entry, then the checks of
 * all chunks. Entries are checked as they come but a failure waits for finish().
 */
import { JsonMembers, type MemberSink } from './json-members.js';
import { checkTocHead, readTocEntries, TocEntryDecoder, type EntrySink, type Toc, type TocBounds } from './toc.js';

export class TocStream implements MemberSink {
  private readonly json = new JsonMembers('entries', this);
  private syntaxError: unknown;
  private version: unknown;
  /** Elements of the last `entries` member, or undefined if it is missing or not an array. */
  private entries: number | undefined;
  private decoder: TocEntryDecoder | undefined;
  private entryError: unknown;

  constructor(
    private readonly bounds: TocBounds,
    /** Called for every `entries` array (JSON.parse keeps the last one); returns where its entries go. */
    private readonly startEntries: () => EntrySink,
  ) {}

  push(bytes: Buffer): void {
    if (this.syntaxError !== undefined) return;
    try {
      this.json.push(bytes);
    } catch (err) {
      this.syntaxError = err;
    }
  }

  finish(): Pick<Toc, 'numTocEntries' | 'chunks'> {
    if (this.syntaxError !== undefined) throw this.syntaxError;
    const whole = this.json.finish();
    if (whole) return readTocEntries(whole.whole, this.bounds, this.startEntries());
    checkTocHead(this.version, this.entries, this.bounds);
    if (this.entryError !== undefined) throw this.entryError;
    return this.decoder!.finish();
  }

  member(key: string, value: unknown): void {
    if (key === 'version') this.version = value;
    if (key === 'entries') {
      this.entries = undefined;
      this.decoder = undefined;
    }
  }

  arrayStart(): void {
    this.entries = 0;
    this.decoder = new TocEntryDecoder(this.bounds, this.startEntries());
    this.entryError = undefined;
  }

  element(value: unknown): void {
    // Past the first bad entry, or past too many, the rest is only parsed: the outcome is known.
    if (++this.entries! > this.bounds.maxEntries || this.entryError !== undefined) return;
    try {
      this.decoder!.add(value);
    } catch (err) {
      this.entryError = err;
    }
  }
}
