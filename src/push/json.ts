/**
 * The bytes of the documents a push writes. Same document → same bytes → same digest and
 * CID: known fields come in the order of the OCI Go types (as containerd's converter,
 * which marshals those types, writes them), maps and unknown fields with sorted keys, no
 * whitespace, nothing time-dependent. Unknown fields are kept, not dropped.
 */
type JsonObject = Record<string, unknown>;

const PLATFORM = ['architecture', 'os', 'os.version', 'os.features', 'variant', 'features'];
const DESCRIPTOR = ['mediaType', 'digest', 'size', 'urls', 'annotations', 'data', 'platform', 'artifactType'];
const MANIFEST = ['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'subject', 'annotations'];
const INDEX = ['schemaVersion', 'mediaType', 'artifactType', 'manifests', 'subject', 'annotations'];

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `order` first, the rest sorted; `shape` rewrites the values of some fields. */
function ordered(obj: JsonObject, order: readonly string[], shape: Readonly<Record<string, (v: unknown) => unknown>> = {}): JsonObject {
  const keys = [...order.filter((k) => k in obj), ...Object.keys(obj).filter((k) => !order.includes(k)).sort()];
  const out: JsonObject = {};
  for (const k of keys) {
    if (obj[k] === undefined) continue;
    out[k] = shape[k] ? shape[k](obj[k]) : obj[k];
  }
  return out;
}

const sortedMap = (v: unknown): unknown => (isObject(v) ? ordered(v, []) : v);
const platform = (v: unknown): unknown => (isObject(v) ? ordered(v, PLATFORM) : v);
const descriptor = (v: unknown): unknown => (isObject(v) ? ordered(v, DESCRIPTOR, { annotations: sortedMap, platform }) : v);
const descriptors = (v: unknown): unknown => (Array.isArray(v) ? v.map(descriptor) : v);

const bytes = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

export const marshalDescriptor = (d: object): Buffer => bytes(descriptor(d));

export const marshalManifest = (m: JsonObject): Buffer =>
  bytes(ordered(m, MANIFEST, { config: descriptor, layers: descriptors, subject: descriptor, annotations: sortedMap }));

export const marshalIndex = (i: JsonObject): Buffer => bytes(ordered(i, INDEX, { manifests: descriptors, subject: descriptor, annotations: sortedMap }));

/** Top-level keys sorted (containerd re-marshals a config as a map); values as they were. */
export const marshalConfig = (c: JsonObject): Buffer => bytes(ordered(c, []));
