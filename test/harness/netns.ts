/**
 * A private network for multi-node tests, as root: one "hub" network namespace holding a
 * bridge, and one namespace per node joined to it by a veth pair. Addresses exist only
 * inside these namespaces (10.213.0.0/24), there is no default route and nothing in the
 * root namespace, so no packet can leave the harness's own namespaces.
 *
 * Names are `sgt<pid>-<node>`: a crashed run's namespaces are found and removed at the
 * next start by `reapStaleNetns()` (owner pid gone, or reused by another program).
 *
 * Commands that must reach a node's loopback-only Kubo API run in that node's network
 * namespace through `nsenter --net` (not `ip netns exec`, which also unshares the mount
 * namespace: a FUSE mount made there would be invisible to the test process).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

export const NETNS_PREFIX = 'sgt';
const SUBNET = '10.213.0';

export interface NetNode {
  readonly name: string;
  /** Network namespace name (`sgt<pid>-<name>`). */
  readonly ns: string;
  /** The node's address on the private network. */
  readonly ip: string;
  /** The node's interface inside its namespace. */
  readonly dev: 'eth0';
  /** The bridge port in the hub namespace that leads to this node. */
  readonly hubPort: string;
}

export interface NetNsOptions {
  /** Token-bucket shape both directions of this node's link (`tc … tbf rate <rate>`), e.g. '100mbit'. */
  readonly rate?: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tc(args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Prefix for running `cmd` inside network namespace `ns` (mount namespace untouched). */
export function inNs(ns: string, cmd: string, args: string[]): { cmd: string; args: string[] } {
  return { cmd: 'nsenter', args: [`--net=/run/netns/${ns}`, '--', cmd, ...args] };
}

export class PrivateNet {
  readonly id: string;
  readonly hub: string;
  readonly nodes = new Map<string, NetNode>();
  private destroyed = false;

  constructor(owner = process.pid) {
    this.id = `${NETNS_PREFIX}${owner}`;
    this.hub = `${this.id}-hub`;
    ip(['netns', 'add', this.hub]);
    try {
      ip(['-n', this.hub, 'link', 'set', 'lo', 'up']);
      ip(['-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', this.hub, 'link', 'set', 'br0', 'up']);
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** A new namespace `sgt<pid>-<name>` on the bridge with address 10.213.0.<index>. */
  addNode(name: string, opts: NetNsOptions = {}): NetNode {
    if (!/^[a-z][a-z0-9]{0,5}$/.test(name) || name === 'hub' || this.nodes.has(name)) throw new Error(`bad node name ${name}`);
    const node: NetNode = { name, ns: `${this.id}-${name}`, ip: `${SUBNET}.${this.nodes.size + 1}`, dev: 'eth0', hubPort: `p-${name}` };
    this.nodes.set(name, node);
    ip(['netns', 'add', node.ns]);
    ip(['-n', node.ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', this.hub, 'link', 'add', node.hubPort, 'type', 'veth', 'peer', 'name', node.dev, 'netns', node.ns]);
    ip(['-n', this.hub, 'link', 'set', node.hubPort, 'master', 'br0', 'up']);
    ip(['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', node.dev]);
    ip(['-n', node.ns, 'link', 'set', node.dev, 'up']);
    if (opts.rate) {
      // Egress of the node (what it serves) and egress of the hub port (what it receives).
      for (const [ns, dev] of [[node.ns, node.dev], [this.hub, node.hubPort]] as const) {
        tc(['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', opts.rate, 'burst', '32kbit', 'latency', '400ms']);
      }
    }
    return node;
  }

  node(name: string): NetNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Cuts (or restores) a node's link at the hub: its packets are dropped, no RST is sent. */
  setLink(name: string, up: boolean): void {
    ip(['-n', this.hub, 'link', 'set', this.node(name).hubPort, up ? 'up' : 'down']);
  }

  /** Bytes received / sent by the node on its private-network interface. */
  counters(name: string): { rx: number; tx: number } {
    const n = this.node(name);
    const [info] = JSON.parse(ip(['-n', n.ns, '-s', '-j', 'link', 'show', 'dev', n.dev])) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[];
    return { rx: info!.stats64.rx.bytes, tx: info!.stats64.tx.bytes };
  }

  exec(name: string, cmd: string, args: string[]): { cmd: string; args: string[] } {
    return inNs(this.node(name).ns, cmd, args);
  }

  /** Kills whatever still runs in the namespaces, then deletes them (the veths go with them). Safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [...[...this.nodes.values()].map((n) => n.ns), this.hub]) deleteNetns(ns);
  }
}

/** SIGKILLs every process in `ns` and deletes it. */
export function deleteNetns(ns: string): void {
  if (!existsSync(`/run/netns/${ns}`)) return;
  for (let round = 0; round < 3; round++) {
    let pids: number[] = [];
    try {
      pids = ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
    } catch {
      pids = [];
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  try {
    ip(['netns', 'del', ns]);
  } catch (err) {
    if (existsSync(`/run/netns/${ns}`)) throw err;
  }
}

/** The namespaces a run owns, by name. */
export function netnsOf(owner: number): string[] {
  return listNetns().filter((ns) => ownerOf(ns) === owner);
}

function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function ownerOf(ns: string): number | undefined {
  const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-[a-z0-9]+$`).exec(ns);
  return m ? Number(m[1]) : undefined;
}

function isTestRunner(pid: number): boolean {
  try {
    // Our runs are node processes; a pid reused by anything else means the owner is gone.
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0]!.endsWith('node');
  } catch {
    return false;
  }
}

/** Removes every `sgt<pid>-*` namespace whose owner is no longer running. Returns what it removed. */
export function reapStaleNetns(): string[] {
  const removed: string[] = [];
  for (const ns of listNetns()) {
    const owner = ownerOf(ns);
    if (owner === undefined || owner === process.pid || isTestRunner(owner)) continue;
    deleteNetns(ns);
    removed.push(ns);
  }
  return removed;
}
