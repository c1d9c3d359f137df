/**
 * Where the Kubo RPC API listens. Discovery as upstream (spec §1.2): the multiaddr in
 * `$IPFS_PATH/api`, else `~/.ipfs/api`, turned into an http URL. Beyond upstream, config
 * `[ipfs] api_address` (a multiaddr or an http(s) URL) replaces the file.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SgError } from '../errors.js';

/** Resolves to the API base URL (`http://host:port`, no trailing slash). */
export type ApiEndpoint = () => Promise<string>;

const HOST_PROTOCOLS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6']);
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/**
 * `/ip4/H/tcp/P`, `/ip6/H/tcp/P`, `/dns{,4,6}/NAME/tcp/P`, optionally followed by `/http`,
 * `/https` or `/tls/http` → `http(s)://host:port`. Anything else (unix sockets, /p2p, udp)
 * is not an address we can speak HTTP to, so it is an error rather than a guess.
 */
export function apiUrlFromMultiaddr(multiaddr: string): string {
  const parts = multiaddr.trim().split('/');
  const [lead, hostProto, host, tcp, port, ...rest] = parts;
  const bad = (why: string): SgError => new SgError('CONFIG', `unsupported IPFS API multiaddr: ${why}`, { multiaddr });
  if (lead !== '' || hostProto === undefined || !HOST_PROTOCOLS.has(hostProto)) throw bad('must start with /ip4, /ip6, /dns, /dns4 or /dns6');
  if (!host) throw bad('missing host');
  if (hostProto === 'ip4' && !isIPv4(host)) throw bad('invalid IPv4 address');
  if (hostProto === 'ip6' && !isIPv6(host)) throw bad('invalid IPv6 address');
  if (hostProto.startsWith('dns') && !HOSTNAME.test(host)) throw bad('invalid DNS name');
  if (tcp !== 'tcp') throw bad('expected /tcp/PORT after the host');
  const portNum = Number(port);
  if (!port || !/^\d+$/.test(port) || portNum < 1 || portNum > 65535) throw bad('invalid TCP port');
  const tail = rest.join('/');
  const scheme = tail === '' || tail === 'http' ? 'http' : tail === 'https' || tail === 'tls/http' ? 'https' : undefined;
  if (!scheme) throw bad(`unexpected trailing components /${tail}`);
  return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${portNum}`;
}

/** A configured address: an http(s) URL (used as given) or a multiaddr. */
export function parseApiAddress(address: string): string {
  const text = address.trim();
  if (text.startsWith('/')) return apiUrlFromMultiaddr(text);
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw new SgError('CONFIG', 'IPFS API address is neither a multiaddr nor a URL', { address: text }, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SgError('CONFIG', 'IPFS API URL must be http or https', { address: text });
  }
  return url.href.replace(/\/+$/, '');
}

/** `$IPFS_PATH/api`, else `$HOME/.ipfs/api` (home from the password database when HOME is unset). */
export function apiFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const repo = env.IPFS_PATH || join(env.HOME || homedir(), '.ipfs');
  return join(repo, 'api');
}

/** Reads and parses one api file. A missing file means the node is not running (yet). */
export async function readApiFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new SgError('UNAVAILABLE', 'IPFS API file not found; is the IPFS daemon running?', { file, transient: true }, { cause: err });
    }
    throw new SgError('IO', 'cannot read IPFS API file', { file, errno: code }, { cause: err });
  }
  try {
    return apiUrlFromMultiaddr(text);
  } catch (err) {
    throw new SgError('CONFIG', 'cannot parse IPFS API file', { file, content: text.trim().slice(0, 100) }, { cause: err });
  }
}

/**
 * The endpoint for a daemon or CLI: a fixed configured address, or the api file re-read
 * on every call, so a node restarted on another port is found by the next caller.
 */
export function apiEndpoint(opts: { apiAddress?: string; env?: NodeJS.ProcessEnv } = {}): ApiEndpoint {
  if (opts.apiAddress) {
    const url = parseApiAddress(opts.apiAddress);
    return () => Promise.resolve(url);
  }
  const env = opts.env ?? process.env;
  return () => readApiFile(apiFilePath(env));
}
