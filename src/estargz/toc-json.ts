/**
 * TOC JSON as the Go writer emits it: `json.MarshalIndent(toc, "", "\t")` of the Go
 * TOCEntry struct, fields in struct order, zero values omitted, xattr names sorted and
 * values base64, strings escaped the Go way (`<`, `>`, `&`, U+2028/9 as \u escapes).
 * Byte-identical TOCs make our output comparable with the reference's.
 */

/** A TOC entry to write; absent or zero fields are left out. */
export interface TocJsonEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: ReadonlyMap<string, Buffer>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

const FIELDS = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest'] as const;

export function marshalToc(entries: readonly TocJsonEntry[]): Buffer {
  const out: string[] = ['{\n\t"version": 1,\n\t"entries": '];
  if (entries.length === 0) out.push('[]');
  else {
    out.push('[\n');
    entries.forEach((e, i) => {
      const lines: string[] = [];
      for (const key of FIELDS) {
        const v = e[key];
        if (key === 'name' || key === 'type') lines.push(`\t\t\t"${key}": ${goString(v as string)}`);
        else if (typeof v === 'number' && v !== 0) lines.push(`\t\t\t"${key}": ${v}`);
        else if (typeof v === 'string' && v !== '') lines.push(`\t\t\t"${key}": ${goString(v)}`);
        else if (v instanceof Map && v.size > 0) lines.push(`\t\t\t"xattrs": ${xattrsJson(v as ReadonlyMap<string, Buffer>)}`);
      }
      out.push(`\t\t{\n${lines.join(',\n')}\n\t\t}${i < entries.length - 1 ? ',' : ''}\n`);
    });
    out.push('\t]');
  }
  out.push('\n}');
  return Buffer.from(out.join(''), 'utf8');
}

function xattrsJson(x: ReadonlyMap<string, Buffer>): string {
  // Go sorts map keys by their bytes; for UTF-8 that is code point order.
  const keys = [...x.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const lines = keys.map((k) => `\t\t\t\t${goString(k)}: "${x.get(k)!.toString('base64')}"`);
  return `{\n${lines.join(',\n')}\n\t\t\t}`;
}

const NEEDS_ESCAPE = /["\\\u0000-\u001f<>&\u2028\u2029]/;

/** A JSON string literal escaped like Go's encoding/json (HTML-safe). */
export function goString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&' || c === 0x2028 || c === 0x2029) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}
