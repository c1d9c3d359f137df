/**
 * Which manifest of an index runs here. Close to containerd's default matcher: same OS and
 * architecture; a variant the host can run (arm64 "" = v8, amd64 "" = v1, arm "" = v7; an
 * older variant of the same family runs on a newer host); the closest variant wins.
 */
import type { Descriptor, Platform } from './oci.js';

const ARCH_BY_NODE: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

const ARCH_ALIASES: Readonly<Record<string, Platform>> = {
  x86_64: { os: '', architecture: 'amd64' },
  'x86-64': { os: '', architecture: 'amd64' },
  aarch64: { os: '', architecture: 'arm64' },
  armhf: { os: '', architecture: 'arm', variant: 'v7' },
  armel: { os: '', architecture: 'arm', variant: 'v6' },
  i386: { os: '', architecture: '386' },
};

const DEFAULT_VARIANT: Readonly<Record<string, string>> = { arm64: 'v8', amd64: 'v1', arm: 'v7' };

export function hostPlatform(): Platform {
  const architecture = ARCH_BY_NODE[process.arch] ?? process.arch;
  const armVersion = (process.config.variables as { arm_version?: string }).arm_version;
  return { os: process.platform, architecture, ...(architecture === 'arm' && armVersion && { variant: `v${armVersion}` }) };
}

/** `os/arch[/variant]`, e.g. `linux/arm64/v8`. */
export function parsePlatform(text: string): Platform | undefined {
  const [os, architecture, variant, extra] = text.trim().toLowerCase().split('/');
  if (!os || !architecture || extra !== undefined) return undefined;
  return normalize({ os, architecture, ...(variant && { variant }) });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The best manifest for `want`, or undefined. Entries without a platform never match. */
export function selectManifest(manifests: readonly Descriptor[], want: Platform): Descriptor | undefined {
  const target = normalize(want);
  let best: { d: Descriptor; score: number } | undefined;
  for (const d of manifests) {
    if (!d.platform) continue;
    const score = matchScore(normalize(d.platform), target);
    if (score !== undefined && (best === undefined || score > best.score)) best = { d, score };
  }
  return best?.d;
}

/** Whether an image for `have` runs on `want` (the test `selectManifest` applies to each entry). */
export function platformMatches(have: Platform, want: Platform): boolean {
  return matchScore(normalize(have), normalize(want)) !== undefined;
}

function normalize(p: Platform): Platform {
  const alias = ARCH_ALIASES[p.architecture.toLowerCase()];
  const architecture = alias?.architecture ?? p.architecture.toLowerCase();
  const variant = (p.variant ?? alias?.variant ?? DEFAULT_VARIANT[architecture])?.toLowerCase();
  return { os: p.os.toLowerCase(), architecture, ...(variant && { variant }) };
}

/** Higher is closer; undefined means the host cannot run it. */
function matchScore(have: Platform, want: Platform): number | undefined {
  if (have.os !== want.os || have.architecture !== want.architecture) return undefined;
  if (have.variant === want.variant) return 1000;
  const h = variantLevel(have.variant);
  const w = variantLevel(want.variant);
  if (h === undefined || w === undefined || h > w) return undefined;
  return h;
}

function variantLevel(variant: string | undefined): number | undefined {
  const m = variant ? /^v(\d+)$/.exec(variant) : null;
  return m ? Number(m[1]) : undefined;
}
