import type { Server } from 'node:http';
import net from 'node:net';

/** Asks the kernel for a loopback port nobody listens on now (for a child process that needs its port up front). */
export async function freeLoopbackPort(): Promise<number> {
  return (await freeLoopbackPorts(['port'])).port;
}

/**
 * One such port per name, all different: every probe stays open until the last is bound, so the kernel cannot hand
 * the same port out twice (closing each probe before asking for the next lets it).
 */
export async function freeLoopbackPorts<Name extends string>(names: readonly Name[]): Promise<Record<Name, number>> {
  const probes: net.Server[] = [];
  try {
    for (const _ of names) {
      const probe = net.createServer();
      probes.push(probe);
      await listen(probe, 0, '127.0.0.1');
    }
    return Object.fromEntries(names.map((name, i) => [name, (probes[i]!.address() as net.AddressInfo).port])) as Record<
      Name,
      number
    >;
  } finally {
    await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))));
  }
}

/**
 * Starts a server listening and resolves with its base URL (an IPv6 host in brackets, the port the kernel gave when 0
 * was asked); rejects with the listen error (EADDRINUSE, EACCES) instead of leaving it unhandled.
 */
export function listen(server: Server | net.Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(urlOf((server.address() as net.AddressInfo).port, host));
    });
  });
}

/** The base URL of a listener (an IPv6 host in brackets). */
export function urlOf(port: number, host: string): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
