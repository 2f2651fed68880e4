import http from 'node:http';
import net from 'node:net';
import { freeLoopbackPorts, listen } from './net';

describe('listen', () => {
  const servers: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('resolves with the URL of the port the kernel gave', async () => {
    const server = http.createServer((_req, res) => res.end('here'));
    servers.push(server);
    const url = await listen(server, 0, '127.0.0.1');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(url)).text()).toBe('here');
  });

  it('rejects when the port is taken, and the server stays closed', async () => {
    const first = http.createServer();
    servers.push(first);
    const url = await listen(first, 0, '127.0.0.1');
    const second = http.createServer();
    await expect(listen(second, Number(new URL(url).port), '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(second.listening).toBe(false);
  });

  it('writes an IPv6 host in brackets', async () => {
    const server = http.createServer();
    servers.push(server);
    await expect(listen(server, 0, '::1')).resolves.toMatch(/^http:\/\/\[::1\]:\d+$/);
  });
});

describe('freeLoopbackPorts', () => {
  it('gives every name a different port that nobody listens on', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `p${i}`);
    const ports = await freeLoopbackPorts(names);
    expect(Object.keys(ports)).toEqual(names);
    expect(new Set(Object.values(ports)).size).toBe(names.length);
    // All released: each can be bound again.
    for (const port of Object.values(ports).slice(0, 5)) {
      const server = net.createServer();
      await listen(server, port, '127.0.0.1');
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
