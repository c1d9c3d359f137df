/**
 * The layer server's socket: serves a LayerMounts to the daemon over the line protocol.
 * It runs in its own process so that the FUSE mounts under running containers outlive
 * the daemon: a daemon killed with SIGKILL, crashed or restarted finds the server still
 * serving, and adopts its mounts (spec §2.8, upstream's FUSE manager).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { SgError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { LayerMounts } from '../layer/remote-layers.js';
import { VERSION } from '../version.js';
import { removeStaleSocket } from '../service/listen.js';
import { lineReader, toWireError, type Owner, type Reply, type Request, type Status } from './protocol.js';

export interface LayerServerOptions {
  readonly layers: LayerMounts;
  readonly socket: string;
  /** Prometheus text of this process's metrics. */
  readonly metrics: () => Promise<string>;
  /** Unmounts everything and releases the runtime; the process exits after the reply. */
  readonly shutdown: () => Promise<void>;
  readonly log: Logger;
}

export interface LayerServer {
  /** Resolves once a client asked for shutdown and was answered. */
  readonly shutdownRequested: Promise<void>;
  close(): Promise<void>;
}

export async function serveLayers(opts: LayerServerOptions): Promise<LayerServer> {
  const { log } = opts;
  await mkdir(dirname(opts.socket), { recursive: true, mode: 0o700 });
  await removeStaleSocket(opts.socket);
  let requested!: () => void;
  const shutdownRequested = new Promise<void>((r) => (requested = r));
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const inflight = new Map<number, AbortController>();
    const send = (reply: Reply) => {
      if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
    };
    sock.on(
      'data',
      lineReader(
        (value) => {
          const req = value as Request;
          if (typeof req?.id !== 'number' || typeof req.op !== 'string') {
            log.warn('layer server: malformed request', { request: value });
            return;
          }
          if (req.op === 'cancel') {
            inflight.get(req.target)?.abort();
            return;
          }
          const controller = new AbortController();
          inflight.set(req.id, controller);
          handle(req, controller.signal).then(
            (result) => send({ id: req.id, ok: true, result }),
            (err: unknown) => send({ id: req.id, ok: false, error: toWireError(err) }),
          ).finally(() => {
            inflight.delete(req.id);
            if (req.op === 'shutdown') requested();
          });
        },
        (line) => log.warn('layer server: unparsable request line', { line: line.slice(0, 200) }),
      ),
    );
    // A daemon that went away mid-request does not want the answer: stop its mounts.
    sock.on('close', () => {
      sockets.delete(sock);
      for (const c of inflight.values()) c.abort();
    });
    sock.on('error', (err) => log.debug('layer server: client connection error', { error: err }));
  });

  async function handle(req: Exclude<Request, { op: 'cancel' }>, signal: AbortSignal): Promise<unknown> {
    const { layers } = opts;
    switch (req.op) {
      case 'status': {
        const mounts: Record<string, Owner> = {};
        for (const mp of layers.mountpoints()) {
          const owner = layers.rootOwner(mp);
          if (owner) mounts[mp] = owner;
        }
        return { pid: process.pid, version: VERSION, mounts } satisfies Status;
      }
      case 'mount':
        await layers.mount(req.mountpoint, req.labels, signal);
        if (signal.aborted) {
          // The mount finished after its caller gave up: nobody will use or unmount it.
          await layers.unmount(req.mountpoint);
          throw new SgError('ABORTED', 'mount cancelled by the daemon', { mountpoint: req.mountpoint });
        }
        return layers.rootOwner(req.mountpoint);
      case 'check':
        return layers.check(req.mountpoint, req.labels);
      case 'unmount':
        return layers.unmount(req.mountpoint);
      case 'metrics':
        return opts.metrics();
      case 'shutdown':
        return opts.shutdown();
    }
  }

  server.listen(opts.socket);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => Promise.reject(new SgError('IO', `layer server cannot listen on ${opts.socket}: ${(err as Error).message}`, { socket: opts.socket }))),
  ]);
  await chmod(opts.socket, 0o600);
  log.info('layer server listening', { socket: opts.socket, pid: process.pid });
  return {
    shutdownRequested,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // end, not destroy: a reply still being written (the shutdown answer) goes out first.
        for (const s of sockets) s.end();
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      }),
  };
}
