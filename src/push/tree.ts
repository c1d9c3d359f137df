/**
 * The part of an image a push publishes, read from containerd's content store before any
 * work starts: indexes (only the manifests the platform filter keeps), manifests, configs,
 * and a presence check of every layer. A missing blob fails here, in seconds, with the
 * digest and what to do, instead of after minutes of conversion.
 */
import { SgError, isSgError } from '../errors.js';
import type { ContentStore } from '../containerd/content.js';
import { parseConfig, parseDescriptor, parseIndex, parseJson, parseManifest, type Descriptor } from '../ipfs/oci.js';
import { formatPlatform } from '../ipfs/platform.js';
import { kindOf } from './media-types.js';
import type { PlatformFilter } from './platforms.js';

type JsonObject = Record<string, unknown>;

/** A descriptor as found (kept whole, unknown fields too) and parsed. */
export interface Desc {
  readonly raw: JsonObject;
  readonly d: Descriptor;
}

export type Node =
  | { readonly kind: 'index'; readonly desc: Desc; readonly doc: JsonObject; readonly children: readonly Node[] }
  | { readonly kind: 'manifest'; readonly desc: Desc; readonly doc: JsonObject; readonly config: Config; readonly layers: readonly Desc[] }
  | { readonly kind: 'blob'; readonly desc: Desc };

export interface Config {
  readonly desc: Desc;
  /** The parsed image config; undefined for an artifact's config blob. */
  readonly doc: JsonObject | undefined;
}

/** containerd's own limit for a manifest read whole. */
const MAX_DOCUMENT = 4 << 20;
const MAX_DEPTH = 4;

export interface TreeContext {
  readonly content: ContentStore;
  readonly filter: PlatformFilter;
  /** The image name, for messages. */
  readonly image: string;
  readonly namespace: string;
  readonly signal?: AbortSignal;
}

export async function loadTree(ctx: TreeContext, root: Desc): Promise<Node> {
  return load(ctx, root, 'image target', 0);
}

export const asDesc = (raw: JsonObject, where: string): Desc => ({ raw, d: parseDescriptor(raw, where) });

async function load(ctx: TreeContext, desc: Desc, role: string, depth: number): Promise<Node> {
  const kind = kindOf(desc.d.mediaType);
  if (kind === 'index') {
    if (depth >= MAX_DEPTH) throw new SgError('INVALID_ARGUMENT', 'image indexes nest too deep', { digest: desc.d.digest });
    const bytes = await readDocument(ctx, desc, role);
    const doc = parseJson(bytes, role);
    const all = parseIndex(bytes, role).manifests;
    const raws = doc.manifests as JsonObject[];
    const kept = all.map((d, i) => ({ raw: raws[i]!, d })).filter((c) => ctx.filter.matches(c.d.platform));
    if (kept.length === 0) {
      const has = all.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ');
      throw new SgError('NOT_FOUND', `no manifest in the image matches ${ctx.filter.describe} (it has ${has}); use --platform or --all-platforms`, {
        image: ctx.image,
        digest: desc.d.digest,
      });
    }
    const children: Node[] = [];
    for (const c of kept) children.push(await load(ctx, c, `manifest ${c.d.digest}`, depth + 1));
    return { kind, desc, doc, children };
  }
  if (kind === 'manifest') {
    const bytes = await readDocument(ctx, desc, role);
    const doc = parseJson(bytes, role);
    const m = parseManifest(bytes, role);
    const rawLayers = doc.layers as JsonObject[];
    const layers = m.layers.map((d, i) => ({ raw: rawLayers[i]!, d }));
    for (const l of layers) await present(ctx, l, `layer of manifest ${desc.d.digest}`);
    return { kind, desc, doc, config: await loadConfig(ctx, { raw: doc.config as JsonObject, d: m.config }, desc), layers };
  }
  await present(ctx, desc, role);
  return { kind: 'blob', desc };
}

/** An image config is read (its diff_ids may change); an artifact's config is only checked. */
async function loadConfig(ctx: TreeContext, desc: Desc, manifest: Desc): Promise<Config> {
  const role = `config of manifest ${manifest.d.digest}`;
  if (kindOf(desc.d.mediaType) !== 'config') {
    await present(ctx, desc, role);
    return { desc, doc: undefined };
  }
  return { desc, doc: parseConfig(await readDocument(ctx, desc, role), role) as JsonObject };
}

async function readDocument(ctx: TreeContext, desc: Desc, role: string): Promise<Buffer> {
  await present(ctx, desc, role);
  return ctx.content.readBlob(desc.d.digest, desc.d.size, MAX_DOCUMENT, ctx.signal);
}

async function present(ctx: TreeContext, desc: Desc, role: string): Promise<void> {
  const { digest, size } = desc.d;
  try {
    const info = await ctx.content.info(digest);
    if (info.size !== size) throw new SgError('CORRUPT', `the ${role} in containerd's content store has another size than its descriptor`, { digest, size, stored: info.size });
  } catch (err) {
    if (!isSgError(err, 'NOT_FOUND')) throw err;
    throw new SgError(
      'NOT_FOUND',
      `blob ${digest} (${role}) is not in containerd's content store: pull the image with all its blobs first (e.g. ctr -n ${ctx.namespace} images pull ${ctx.image})`,
      { image: ctx.image, digest, namespace: ctx.namespace },
      { cause: err },
    );
  }
}
