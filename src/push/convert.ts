/**
 * The bottom-up walk of containerd's index converter with ipfs-push's post-convert hook
 * (spec §1.8): layers, then the config (its diff_ids follow the new layers), then the
 * manifest, then the index. Every blob goes to IPFS and its descriptor gets exactly
 * `urls: ["ipfs://<CID>"]`, which changes every manifest and index, so those are always
 * rewritten; a config only when its diff_ids change. Documents the push writes are stored
 * in containerd with the GC labels that keep their children alive.
 */
import { SgError } from '../errors.js';
import type { PushListener } from './events.js';
import { marshalConfig, marshalIndex, marshalManifest } from './json.js';
import { layerAction, pushLayer, type LayerEnv, type LayerResult } from './layer.js';
import { kindOf, toOci } from './media-types.js';
import type { Config, Desc, Node } from './tree.js';

type JsonObject = Record<string, unknown>;

const GC_REF = 'containerd.io/gc.ref.';

export interface ConvertEnv extends LayerEnv {
  readonly emit: PushListener;
  /** Total layers to convert, for `n/N` progress. */
  readonly layerCount: number;
}

export class Converter {
  /** By digest: a blob shared by several manifests is done once. */
  private readonly layers = new Map<string, Promise<LayerResult>>();
  private readonly configs = new Map<string, Promise<JsonObject>>();
  private readonly missedByLayer: (readonly string[])[] = [];

  constructor(private readonly env: ConvertEnv) {}

  /** Prioritized files found in no layer. */
  missedPrioritizedFiles(): string[] {
    return this.env.prioritizedFiles.filter((f) => this.missedByLayer.length > 0 && this.missedByLayer.every((m) => m.includes(f)));
  }

  /** The node's new descriptor (urls set), after its whole subtree is published. */
  async node(n: Node): Promise<JsonObject> {
    if (n.kind === 'index') return this.index(n);
    if (n.kind === 'manifest') return this.manifest(n);
    return this.asIs(n.desc);
  }

  private async index(n: Extract<Node, { kind: 'index' }>): Promise<JsonObject> {
    const manifests: JsonObject[] = [];
    for (const child of n.children) manifests.push(await this.node(child));
    const labels = gcLabels(await this.labelsOf(n.desc), manifests.map((m, i) => [`m.${i}`, m.digest as string]));
    const doc = { ...n.doc, ...mediaTypeOf(n.doc), manifests };
    return this.document('index', n.desc, marshalIndex(doc), labels);
  }

  private async manifest(n: Extract<Node, { kind: 'manifest' }>): Promise<JsonObject> {
    const layers: JsonObject[] = [];
    const diffIDs: (string | undefined)[] = [];
    for (const l of n.layers) {
      if (kindOf(l.d.mediaType) !== 'layer') {
        layers.push(await this.asIs(l));
        diffIDs.push(undefined);
        continue;
      }
      const r = await this.layer(l);
      layers.push(r.descriptor);
      diffIDs.push(r.diffID);
    }
    const config = await this.config(n.config, diffIDs);
    const refs: [string, string][] = [['config', config.digest as string], ...layers.map((l, i): [string, string] => [`l.${i}`, l.digest as string])];
    const labels = gcLabels(await this.labelsOf(n.desc), refs);
    const doc = { ...n.doc, ...mediaTypeOf(n.doc), config, layers };
    return this.document('manifest', n.desc, marshalManifest(doc), labels);
  }

  private layer(l: Desc): Promise<LayerResult> {
    let p = this.layers.get(l.d.digest);
    if (!p) {
      const index = this.layers.size + 1;
      const total = this.env.layerCount;
      p = (async () => {
        const plan = await layerAction(this.env, l);
        this.env.emit({ type: 'layer', index, total, digest: l.d.digest, action: plan.action });
        const r = await pushLayer(this.env, l, plan);
        this.missedByLayer.push(r.missed);
        this.env.emit({ type: 'layer-done', index, total, digest: r.descriptor.digest as string, size: r.descriptor.size as number });
        return r;
      })().catch((err: unknown) => {
        throw inLayer(err, l.d.digest);
      });
      this.layers.set(l.d.digest, p);
    }
    return p;
  }

  /** `diffIDs[i]`: layer i's new diffID, undefined when it did not change. */
  private config(c: Config, diffIDs: readonly (string | undefined)[]): Promise<JsonObject> {
    let p = this.configs.get(c.desc.d.digest);
    if (!p) {
      p = (async () => {
        const doc = c.doc === undefined ? undefined : withDiffIDs(c.doc, diffIDs, c.desc.d.digest);
        if (doc === undefined) return this.asIs(c.desc);
        return this.document('config', c.desc, marshalConfig(doc), withoutGcRefs(await this.labelsOf(c.desc)));
      })();
      this.configs.set(c.desc.d.digest, p);
    }
    return p;
  }

  /** A blob published unchanged: only its descriptor changes (OCI media type, urls). */
  private async asIs(desc: Desc): Promise<JsonObject> {
    const { cid } = await this.env.publisher.addStored(kindOf(desc.d.mediaType), desc.d);
    return { ...desc.raw, mediaType: toOci(desc.d.mediaType), urls: [`ipfs://${cid}`] };
  }

  private async document(kind: 'index' | 'manifest' | 'config', old: Desc, bytes: Buffer, labels: Record<string, string>): Promise<JsonObject> {
    const p = await this.env.publisher.addDocument(kind, bytes, labels);
    return { ...old.raw, mediaType: toOci(old.d.mediaType), digest: p.digest, size: p.size, urls: [`ipfs://${p.cid}`] };
  }

  private async labelsOf(desc: Desc): Promise<Record<string, string>> {
    return { ...(await this.env.content.info(desc.d.digest)).labels };
  }
}

/** Names the layer in a failure from deep inside (the writer, a stream, IPFS). */
function inLayer(err: unknown, digest: string): unknown {
  if (!(err instanceof SgError) || err.context.layer !== undefined) return err;
  return new SgError(err.code, `layer ${digest}: ${err.message}`, { ...err.context, layer: digest }, { cause: err });
}

/** An explicit `mediaType` field, in its OCI form; none when the document has none. */
const mediaTypeOf = (doc: JsonObject): JsonObject => (typeof doc.mediaType === 'string' ? { mediaType: toOci(doc.mediaType) } : {});

const withoutGcRefs = (labels: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(labels).filter(([k]) => !k.startsWith(GC_REF)));

/**
 * The original's labels (e.g. distribution sources) with its GC references replaced by the
 * new document's: `containerd.io/gc.ref.content.<key>` → child digest.
 */
function gcLabels(original: Record<string, string>, refs: readonly [string, string][]): Record<string, string> {
  const labels = withoutGcRefs(original);
  for (const [key, digest] of refs) labels[`${GC_REF}content.${key}`] = digest;
  return labels;
}

/**
 * The config with `rootfs.diff_ids` updated, or undefined when no diffID changed. Like
 * containerd's converter, the legacy `Image` fields (a dummy ID tied to the old layers)
 * are dropped from `config` and `container_config` when the diff_ids change.
 */
function withDiffIDs(doc: JsonObject, diffIDs: readonly (string | undefined)[], digest: string): JsonObject | undefined {
  if (diffIDs.every((d) => d === undefined)) return undefined;
  const rootfs = doc.rootfs as { type?: unknown; diff_ids?: string[] } | undefined;
  const old = rootfs?.diff_ids ?? [];
  if (old.length !== diffIDs.length) {
    throw new SgError('INVALID_ARGUMENT', 'image config lists another number of diff_ids than the manifest has layers', { digest, diffIDs: old.length, layers: diffIDs.length });
  }
  const next = old.map((d, i) => diffIDs[i] ?? d);
  if (next.every((d, i) => d === old[i])) return undefined;
  const out: JsonObject = { ...doc, rootfs: { ...rootfs, diff_ids: next } };
  for (const key of ['config', 'container_config']) {
    const sub = out[key];
    if (sub !== null && typeof sub === 'object' && !Array.isArray(sub) && 'Image' in sub) {
      const { Image: _dropped, ...rest } = sub as JsonObject;
      out[key] = rest;
    }
  }
  return out;
}
