/**
 * A private IPFS swarm for peer-to-peer tests: one online Kubo per network namespace of a
 * `PrivateNet`, Kubo's `test` profile (no bootstrap peers, no mDNS, no AutoConf, no
 * delegated routers), swarm on the node's own private address (TCP only), API and gateway
 * on 127.0.0.1 inside the namespace, a `swarm.key` generated for the run with
 * `LIBP2P_FORCE_PNET=1`, and explicit `Peering.Peers`.
 *
 * Everything lives under the run's scratch dir, so `reapStale()` kills the Kubos of a
 * crashed run (their environment names the dir) and `reapStaleNetns()` deletes its namespaces.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type ExecFileSyncOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { findTool } from './tools.js';
import { startProc, waitFor, type Proc } from './proc.js';
import { PrivateNet, reapStaleNetns, type NetNode, type NetNsOptions } from './netns.js';
import { reapStale } from './scratch.js';
import { MAIN_JS, type CliRun } from './e2e-image.js';

const execFileAsync = promisify(execFile);

export const SWARM_PORT = 4001;

export interface SwarmNode {
  readonly net: NetNode;
  readonly ipfsPath: string;
  readonly peerId: string;
  /** `/ip4/10.213.0.N/tcp/4001` */
  readonly swarmAddr: string;
  /** Environment for any process that talks to this node's API (IPFS_PATH, LIBP2P_FORCE_PNET). */
  readonly env: NodeJS.ProcessEnv;
  /** The ipfs CLI against this node, run in its namespace. */
  cli(args: string[], input?: Uint8Array): Buffer;
  /** `ipfs add --cid-version=1 --raw-leaves --pin` of bytes → CID. */
  add(bytes: Uint8Array): string;
  /** `cmd args` wrapped to run in this node's network namespace. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] };
  /** Peer IDs this node is connected to. */
  peers(): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
}

export interface SwarmNodeOptions extends NetNsOptions {
  /** Names of earlier nodes to list in this node's `Peering.Peers`. */
  readonly peers?: readonly string[];
}

export class Swarm {
  readonly net: PrivateNet;
  readonly nodes = new Map<string, SwarmNode>();
  private readonly swarmKey = `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`;
  private readonly bin = findTool('ipfs');

  /** Cleans what crashed runs left, then creates the hub namespace. */
  constructor(readonly scratch: string) {
    reapStale();
    reapStaleNetns();
    this.net = new PrivateNet();
  }

  /** A namespace with its own Kubo, initialised and started online. */
  async addNode(name: string, opts: SwarmNodeOptions = {}): Promise<SwarmNode> {
    const net = this.net.addNode(name, opts);
    const ipfsPath = join(this.scratch, `ipfs-${name}`);
    mkdirSync(ipfsPath, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, IPFS_PATH: ipfsPath, LIBP2P_FORCE_PNET: '1' };
    const bin = this.bin;
    const scratch = this.scratch;
    const wrap = (cmd: string, args: string[]) => this.net.exec(name, cmd, args);
    const run = (args: string[], o: ExecFileSyncOptions = {}): Buffer => {
      const w = wrap(bin, args);
      return execFileSync(w.cmd, w.args, { env, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'], ...o }) as Buffer;
    };
    run(['init', '--profile', 'test', '--empty-repo']);
    writeFileSync(join(ipfsPath, 'swarm.key'), this.swarmKey, { mode: 0o600 });
    const swarmAddr = `/ip4/${net.ip}/tcp/${SWARM_PORT}`;
    const setJson = (key: string, value: unknown) => run(['config', '--json', key, JSON.stringify(value)]);
    setJson('Addresses.Swarm', [swarmAddr]);
    setJson('Swarm.Transports.Network', { QUIC: false, WebTransport: false, WebRTCDirect: false, Websocket: false, TCP: true });
    setJson('Peering.Peers', (opts.peers ?? []).map((p) => {
      const peer = this.node(p);
      return { ID: peer.peerId, Addrs: [peer.swarmAddr] };
    }));
    const peerId = run(['config', 'Identity.PeerID']).toString().trim();

    let proc: Proc | undefined;
    const node: SwarmNode = {
      net,
      ipfsPath,
      peerId,
      swarmAddr,
      env,
      cli: (args, input) => run(args, input ? { input } : {}),
      add: (bytes) => run(['add', '-Q', '--cid-version=1', '--raw-leaves', '--pin'], { input: bytes }).toString().trim(),
      wrap,
      peers: () =>
        run(['swarm', 'peers'])
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.slice(l.lastIndexOf('/') + 1)),
      get running() {
        return proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null;
      },
      async start() {
        const w = wrap(bin, ['daemon']);
        proc = startProc(w.cmd, w.args, join(scratch, `ipfs-${name}.log`), { env });
        const p = proc;
        await waitFor(`kubo ${name}`, 30_000, () => {
          if (p.child.exitCode !== null) throw new Error(`ipfs daemon ${name} exited: ${readFileSync(p.logPath, 'utf8').slice(-800)}`);
          return readFileSync(p.logPath, 'utf8').includes('Daemon is ready') ? true : undefined;
        });
      },
      async stop() {
        await proc?.stop('SIGTERM', 10_000);
        proc = undefined;
      },
    };
    this.nodes.set(name, node);
    await node.start();
    return node;
  }

  node(name: string): SwarmNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no swarm node ${name}`);
    return n;
  }

  /**
   * Waits until `a` reports a connection to `b`, dialing it now and then as a peering
   * service would (Kubo's own peering backs off for up to several seconds between dials).
   */
  async connected(a: string, b: string, ms = 30_000): Promise<void> {
    const from = this.node(a);
    const to = this.node(b);
    let lastDial = 0;
    await waitFor(`${a} connected to ${b}`, ms, () => {
      if (from.peers().includes(to.peerId)) return true;
      if (Date.now() - lastDial > 2000) {
        lastDial = Date.now();
        try {
          from.cli(['swarm', 'connect', '--timeout=3s', `${to.swarmAddr}/p2p/${to.peerId}`]);
        } catch {
          // not reachable yet; polled again
        }
      }
      return undefined;
    });
  }

  /**
   * Waits until a libp2p ping from `a` gets an answer from `b`. After a link outage the old
   * connection still counts as open while TCP backs off its retransmits for seconds, so
   * `connected` says nothing about bytes; an answered ping shows they flow both ways again.
   */
  async answering(a: string, b: string, ms = 60_000): Promise<void> {
    const from = this.node(a);
    const to = this.node(b);
    await waitFor(`${b} answers a ping from ${a}`, ms, () => {
      from.cli(['ping', '--timeout=3s', '-n', '1', to.peerId]);
      return true;
    });
  }

  /** Stops every Kubo and deletes every namespace. Safe to call twice; the scratch dir is the caller's. */
  async destroy(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((n) => n.stop()));
    this.net.destroy();
  }
}

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

export interface LayerMount {
  readonly dir: string;
  readonly child: ChildProcess;
  /** The server's stderr so far. */
  stderr(): string;
  readonly alive: boolean;
  /** SIGTERM (the CLI unmounts and exits), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface LayerMountOptions {
  readonly cid: string;
  readonly tocDigest: string;
  readonly dir: string;
  /** `--root`: cache and state; a fresh dir means a cold cache. */
  readonly root: string;
  /** TOML text written next to `root`. */
  readonly config: string;
  /** `--log-level` (default warn); the log is the server's stderr. */
  readonly logLevel?: string;
}

/**
 * `stargz-ipfs layer mount --cid` run in `node`'s network namespace against its Kubo.
 * The mount is global (only the network namespace is entered). Resolves once it prints `mounted`.
 */
export async function startLayerMount(node: SwarmNode, o: LayerMountOptions): Promise<LayerMount> {
  const config = `${o.root}.toml`;
  writeFileSync(config, o.config);
  const w = node.wrap(process.execPath, [CLI, 'layer', 'mount', '--cid', o.cid, '--toc-digest', o.tocDigest, '--root', o.root, '--config', config, '--log-level', o.logLevel ?? 'warn', o.dir]);
  const child = spawn(w.cmd, w.args, { env: node.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const m: LayerMount = {
    dir: o.dir,
    child,
    stderr: () => stderr,
    get alive() {
      return alive();
    },
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (c) => reject(new Error(`layer mount on ${node.net.name} exited ${c}: ${stderr}`)));
      setTimeout(() => reject(new Error(`layer mount on ${node.net.name} did not mount in 60 s: ${stderr}`)), 60_000).unref();
    });
    if (line !== `mounted ${o.dir}`) throw new Error(`layer mount printed ${line}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return m;
}

const DAEMON = new URL('../../src/cli/daemon.js', import.meta.url).pathname;

export interface NodeDaemon {
  readonly proc: Proc;
  readonly socket: string;
  readonly root: string;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Our snapshotter daemon in `node`'s network namespace, reading through that node's Kubo
 * (found from IPFS_PATH as usual). Its unix socket and FUSE mounts are global, so a
 * containerd in the root namespace uses it as a proxy snapshotter.
 */
export async function startDaemonOn(node: SwarmNode, dir: string, config: string): Promise<NodeDaemon> {
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'root');
  const socket = join(dir, 's.sock');
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, config);
  const w = node.wrap(process.execPath, [DAEMON, '--root', root, '--address', socket, '--config', configPath, '--log-level', 'debug']);
  const proc = startProc(w.cmd, w.args, join(dir, 'daemon.log'), { env: node.env });
  const log = (): string => readFileSync(proc.logPath, 'utf8');
  try {
    await waitFor(`daemon on ${node.net.name}`, 30_000, () => {
      if (proc.child.exitCode !== null) throw new Error(`daemon exited: ${log().slice(-2000)}`);
      return log().includes('"msg":"daemon started"') || undefined;
    });
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return { proc, socket, root, log, stop: (signal = 'SIGTERM') => proc.stop(signal, 15_000) };
}

/**
 * `stargz-ipfs args…` run in `node`'s network namespace with its IPFS_PATH (ipfs-push,
 * rpull: anything that talks to that node's Kubo API). Resolves with the exit code.
 */
export async function runCliOn(node: SwarmNode, args: string[], timeoutMs = 600_000): Promise<CliRun> {
  const w = node.wrap(process.execPath, [MAIN_JS, ...args]);
  try {
    const { stdout, stderr } = await execFileAsync(w.cmd, w.args, { env: node.env, maxBuffer: 64 << 20, timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/**
 * Empties a node's Kubo blockstore: every recursive and direct pin removed, then
 * `ipfs repo gc`. Throws if more than `maxLeft` blocks remain (the empty-dir objects).
 */
export function emptyBlockstore(node: SwarmNode, maxLeft = 16): void {
  for (const type of ['recursive', 'direct']) {
    const pins = node.cli(['pin', 'ls', '--quiet', `--type=${type}`]).toString().split('\n').filter(Boolean);
    for (let i = 0; i < pins.length; i += 200) node.cli(['pin', 'rm', ...pins.slice(i, i + 200)]);
  }
  node.cli(['repo', 'gc', '--quiet']);
  const left = node.cli(['refs', 'local']).toString().split('\n').filter(Boolean).length;
  if (left > maxLeft) throw new Error(`${node.net.name} still holds ${left} blocks after unpin + gc`);
}
