/** containerd's image records: a name, labels and a target descriptor. */
import { SgError } from '../errors.js';
import { unary, type Session } from './call.js';
import type { Labels } from './content.js';
import type { ServiceClient } from './proto.js';

/** The descriptor an image record points at (containerd keeps no `urls` or platform here). */
export interface ImageTarget {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Labels;
}

export interface ImageRecord {
  readonly name: string;
  readonly labels: Labels;
  readonly target: ImageTarget;
}

interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: { media_type: string; digest: string; size: number; annotations: Record<string, string> };
}

export class ImageStore {
  constructor(
    private readonly client: ServiceClient,
    private readonly session: Session,
  ) {}

  async get(name: string): Promise<ImageRecord> {
    const res = await unary<{ image: WireImage }>(this.client, 'Get', { name }, this.session, 'images.Get', { image: name });
    return fromWire(res.image);
  }

  async create(image: ImageRecord): Promise<ImageRecord> {
    const res = await unary<{ image: WireImage }>(this.client, 'Create', { image: toWire(image) }, this.session, 'images.Create', { image: image.name });
    return fromWire(res.image);
  }

  /** Replaces the record; with `paths` (e.g. `target`, `labels.x`) only those fields. */
  async update(image: ImageRecord, paths: readonly string[] = []): Promise<ImageRecord> {
    const req = { image: toWire(image), update_mask: { paths } };
    const res = await unary<{ image: WireImage }>(this.client, 'Update', req, this.session, 'images.Update', { image: image.name });
    return fromWire(res.image);
  }

  /** Create, or replace the record of that name when there is one (as `ctr images tag --force`). */
  async put(image: ImageRecord): Promise<ImageRecord> {
    try {
      return await this.create(image);
    } catch (err) {
      if (!(err instanceof SgError && err.code === 'ALREADY_EXISTS')) throw err;
      return this.update(image);
    }
  }
}

function toWire(i: ImageRecord): WireImage {
  const t = i.target;
  return { name: i.name, labels: { ...i.labels }, target: { media_type: t.mediaType, digest: t.digest, size: t.size, annotations: { ...t.annotations } } };
}

function fromWire(w: WireImage): ImageRecord {
  const t = w.target;
  const annotations = t.annotations ?? {};
  return {
    name: w.name,
    labels: w.labels ?? {},
    target: { mediaType: t.media_type, digest: t.digest, size: t.size, ...(Object.keys(annotations).length > 0 && { annotations }) },
  };
}
