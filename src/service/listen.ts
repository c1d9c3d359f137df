/**
 * The gRPC server on a unix socket, as upstream: the socket's directory is created 0700
 * and a stale socket file is replaced. A socket that still answers belongs to a running
 * daemon, and taking it over would cut containerd off from that one: refuse instead.
 */
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SgError } from '../errors.js';

export async function listenUnix(server: grpc.Server, address: string): Promise<void> {
  await mkdir(dirname(address), { recursive: true, mode: 0o700 });
  await removeStaleSocket(address);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(new SgError('IO', `cannot listen on ${address}: ${err.message}`, { address })) : resolve(),
    );
  });
}

/** Drains in-flight calls for up to `graceMs`, then cuts the rest. */
export function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => server.forceShutdown(), graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Removes a socket file nobody answers on; refuses one that a live process serves. */
export async function removeStaleSocket(address: string): Promise<void> {
  let st;
  try {
    st = await lstat(address);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SgError('CONFIG', `${address} exists and is not a socket`, { address });
  if (await answers(address)) throw new SgError('CONFIG', `another process is serving ${address}`, { address });
  await unlink(address);
}

function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(address);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
