/**
 * `GET /metrics` on `metrics_address` (TCP `host:port`), like upstream's endpoint.
 * A listen failure rejects: upstream treats it as fatal, and so does the daemon.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { SgError } from '../errors.js';
import { registry } from './metrics.js';
import { mergeExpositions } from './merge.js';

export interface MetricsServer {
  close(): Promise<void>;
}

/**
 * `more` adds another process's exposition (the layer server's); when it fails, this
 * process's own metrics are still served.
 */
export async function serveMetrics(address: string, more?: () => Promise<string>): Promise<MetricsServer> {
  const { host, port } = splitHostPort(address);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    exposition(more).then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(`${String(err)}\n`),
    );
  });
  server.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(new SgError('CONFIG', `metrics_address ${address}: ${(err as Error).message}`)))]);
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function exposition(more: (() => Promise<string>) | undefined): Promise<string> {
  const own = await registry.metrics();
  if (!more) return own;
  const other = await more().catch(() => '');
  return mergeExpositions(own, other);
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces, as Go's net.Listen). */
function splitHostPort(address: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) throw new SgError('CONFIG', `metrics_address must be host:port, got "${address}"`);
  return { host: m[1] ?? (m[2] || undefined), port: Number(m[3]) };
}
