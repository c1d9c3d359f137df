/**
 * The daemon's side of the layer server: a RemoteLayers that forwards every call over the
 * socket. Root owners of the mounted layers are kept here, from `status` at connect and
 * from each mount's reply, because the snapshotter asks for them synchronously.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { SgError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { RemoteLayers } from '../snapshotter/remote.js';
import { fromWireError, lineReader, type Labels, type Owner, type Reply, type Request, type Status } from './protocol.js';

/** Calls other than mount (bounded by the snapshotter's own budget) give up after this. */
const CALL_TIMEOUT_MS = 120_000;
/** How long a shut-down server may take to exit after its reply. */
const SHUTDOWN_EXIT_MS = 10_000;

type Body = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class LayerServerClient implements RemoteLayers {
  private readonly pending = new Map<number, Pending>();
  private readonly owners = new Map<string, Owner>();
  private nextId = 1;
  private closing = false;
  /** Resolves when the connection ends without `close()`: the server died. */
  readonly lost: Promise<void>;
  /** Pid of the serving process, from `status`. */
  pid = 0;

  private constructor(private readonly sock: Socket, log: Logger) {
    let onLost!: () => void;
    this.lost = new Promise<void>((r) => (onLost = r));
    sock.on(
      'data',
      lineReader(
        (value) => {
          const reply = value as Reply;
          const p = this.pending.get(reply.id);
          if (!p) return;
          this.pending.delete(reply.id);
          if (reply.ok) p.resolve(reply.result);
          else p.reject(fromWireError(reply.error));
        },
        (line) => log.warn('layer server sent an unparsable line', { line: line.slice(0, 200) }),
      ),
    );
    sock.on('error', (err) => log.debug('layer server connection error', { error: err }));
    sock.on('close', () => {
      for (const p of this.pending.values()) p.reject(new SgError('UNAVAILABLE', 'connection to the layer server lost'));
      this.pending.clear();
      if (!this.closing) onLost();
    });
  }

  /** Connects and reads the server's status; rejects when nothing answers on `socket`. */
  static async connect(socket: string, log: Logger): Promise<LayerServerClient> {
    const sock = connect(socket);
    await Promise.race([
      once(sock, 'connect'),
      once(sock, 'error').then(([err]) => Promise.reject(new SgError('UNAVAILABLE', `layer server not answering on ${socket}: ${(err as Error).message}`, { socket }))),
    ]);
    const client = new LayerServerClient(sock, log);
    try {
      const status = (await client.call({ op: 'status' }, undefined, 10_000)) as Status;
      client.pid = status.pid;
      for (const [mp, owner] of Object.entries(status.mounts)) client.owners.set(mp, owner);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Mountpoints the server served when we connected or mounted since. */
  mountpoints(): string[] {
    return [...this.owners.keys()];
  }

  async mount(mountpoint: string, labels: Labels, signal: AbortSignal): Promise<void> {
    const owner = (await this.call({ op: 'mount', mountpoint, labels }, signal)) as Owner;
    this.owners.set(mountpoint, owner);
  }

  async check(mountpoint: string, labels: Labels): Promise<void> {
    await this.call({ op: 'check', mountpoint, labels });
  }

  mounted(mountpoint: string): boolean {
    return this.owners.has(mountpoint);
  }

  rootOwner(mountpoint: string): Owner | undefined {
    return this.owners.get(mountpoint);
  }

  async unmount(mountpoint: string): Promise<void> {
    this.owners.delete(mountpoint);
    await this.call({ op: 'unmount', mountpoint });
  }

  /** Prometheus text of the layer server's metrics (layer fs, chunk cache, IPFS). */
  async metrics(): Promise<string> {
    return (await this.call({ op: 'metrics' }, undefined, 10_000)) as string;
  }

  /**
   * Asks the server to unmount everything and release the cache, then waits (bounded) for
   * its process to exit, so that a stop is complete when the daemon has exited.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    try {
      await this.call({ op: 'shutdown' });
      const until = Date.now() + SHUTDOWN_EXIT_MS;
      while (Date.now() < until && running(this.pid)) await new Promise((r) => setTimeout(r, 20));
    } finally {
      this.close();
    }
  }

  /** Disconnects; the server and its mounts stay. */
  close(): void {
    this.closing = true;
    this.sock.destroy();
  }

  private call(body: Body, signal?: AbortSignal, timeoutMs = CALL_TIMEOUT_MS): Promise<unknown> {
    if (this.sock.destroyed) return Promise.reject(new SgError('UNAVAILABLE', 'not connected to the layer server'));
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        this.sock.write(JSON.stringify({ id: this.nextId++, op: 'cancel', target: id }) + '\n');
        settle(() => reject(new SgError('ABORTED', `layer server ${body.op} cancelled`, { op: body.op })));
      };
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        fn();
      };
      this.pending.set(id, { resolve: (v) => settle(() => resolve(v)), reject: (e) => settle(() => reject(e)) });
      timer = setTimeout(() => settle(() => reject(new SgError('TIMEOUT', `layer server did not answer ${body.op} within ${timeoutMs} ms`, { op: body.op }))), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sock.write(JSON.stringify({ id, ...body }) + '\n');
    });
  }
}

/** The process exists and is not a zombie (a server whose parent died is reaped by init). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}
