// Which addresses are this host's: where a client reaches a server bound to an address, whether an
// address is loopback, and every address of this host's interfaces.
import os from 'node:os';

/** The host clients use to reach a server: its bind address, or loopback when it binds every address. */
export function clientHost(server: { ip: string }): string {
  if (server.ip === '0.0.0.0' || server.ip === '') return '127.0.0.1';
  if (server.ip === '::') return '::1';
  return server.ip;
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === 'localhost';
}

/** Loopback names and every address of this host's network interfaces. */
export function localAddresses(): string[] {
  const out = new Set(['127.0.0.1', 'localhost', '::1']);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return [...out];
}
