import { EventEmitter } from 'node:events';
import http, { type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { silentLogger } from '../common/logger';
import { listen } from '../common/net';
import type { GatewayActivity as ActivityReport } from '../contracts/lifecycle';
import { startRouted, type Routed } from '../test/support/gateway-harness';
import { openWebSocket, upgradeStatus } from '../test/support/websocket';
import { createGatewayActivity } from './activity';
import { createAdminHandler } from './admin';
import { createFileRoutesStore } from './routes-store';

/** What the auto-stop reads of the gateway (gateway/activity.ts), on a fake monotonic clock. */
describe('gateway activity', () => {
  let clock = 0;
  const now = () => clock;
  const closable = () => new EventEmitter() as unknown as Duplex & ServerResponse;

  beforeEach(() => {
    clock = 1_000_000;
  });

  it('counts a fresh gateway as used at its start', () => {
    const activity = createGatewayActivity(now);
    clock += 42_000;
    expect(activity.of('gs-never-seen')).toEqual({ idleSeconds: 42, openWebSockets: 0, openSshSessions: 0 });
  });

  it('is never idle while a tunnel is open, and counts from its close once it closes', () => {
    const activity = createGatewayActivity(now);
    const terminal = closable();
    const ssh = closable();
    activity.tunnel('gs-a', terminal, 'websocket');
    activity.tunnel('gs-a', ssh, 'ssh');
    clock += 3600_000;
    expect(activity.of('gs-a')).toEqual({ idleSeconds: 0, openWebSockets: 1, openSshSessions: 1 });
    terminal.emit('close');
    clock += 60_000;
    expect(activity.of('gs-a')).toEqual({ idleSeconds: 0, openWebSockets: 0, openSshSessions: 1 });
    ssh.emit('close');
    clock += 5_000;
    expect(activity.of('gs-a')).toEqual({ idleSeconds: 5, openWebSockets: 0, openSshSessions: 0 });
    // Another gitspace's use is not this one's.
    expect(activity.of('gs-b').idleSeconds).toBe(3665);
  });

  it('counts a request at its start and at the end of its response', () => {
    const activity = createGatewayActivity(now);
    clock += 100_000;
    const response = closable();
    activity.request('gs-a', response);
    clock += 30_000;
    expect(activity.of('gs-a').idleSeconds).toBe(30);
    response.emit('close');
    clock += 2_000;
    expect(activity.of('gs-a').idleSeconds).toBe(2);
  });

  describe('on the admin listener', () => {
    let dir: string;
    let server: http.Server;
    let url: string;
    const activity = createGatewayActivity(() => clock);

    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'gateway-activity-'));
      server = http.createServer(
        createAdminHandler({
          routes: await createFileRoutesStore(dir),
          adminToken: 'admin-secret',
          logger: silentLogger,
          onRouteGone: () => undefined,
          activity,
        }),
      );
      url = await listen(server, 0, '127.0.0.1');
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    });

    it('answers GET /routes/:id/activity only with the admin token', async () => {
      activity.tunnel('gs-open', closable(), 'websocket');
      const read = (token?: string) =>
        fetch(`${url}/routes/gs-open/activity`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      expect((await read()).status).toBe(401);
      expect((await read('wrong')).status).toBe(401);
      const answer = await read('admin-secret');
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ idleSeconds: 0, openWebSockets: 1, openSshSessions: 0 });
      const post = await fetch(`${url}/routes/gs-open/activity`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin-secret' },
      });
      expect(post.status).toBe(405);
    });
  });

  describe('as the gateway counts it', () => {
    const ID = 'gs-used';
    let routed: Routed;
    const read = async (gitspaceId = ID) =>
      (await routed.h.admin('GET', `/routes/${gitspaceId}/activity`)).body as ActivityReport;
    const page = (headers: Record<string, string> = {}, gitspaceId = ID) =>
      fetch(`${routed.h.publicUrl}/gitspaces/${gitspaceId}/page`, { headers });

    beforeAll(async () => {
      routed = await startRouted(ID);
      // The recorder refuses upgrades: this upstream takes WebSockets instead.
      routed.upstream.server.removeAllListeners('upgrade');
      new WebSocketServer({ server: routed.upstream.server });
    });
    afterAll(() => routed.close());

    it('refused requests and upgrades are no use: an anonymous client cannot keep a gitspace running', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const ws = routed.h.wsUrl(`/gitspaces/${ID}/pty`);
      expect((await page()).status).toBe(401);
      expect((await page({ authorization: 'Bearer forged' })).status).toBe(401);
      expect((await page({ authorization: `Bearer ${await routed.h.token('gs-other')}` })).status).toBe(403);
      expect((await page({ authorization: `Bearer ${await routed.h.token(ID, { runId: 'run-0' })}` })).status).toBe(
        401,
      );
      expect(await upgradeStatus(ws)).toBe(401);
      expect(await upgradeStatus(ws, { authorization: `Bearer ${await routed.h.token('gs-other')}` })).toBe(403);
      expect(routed.upstream.heads).toEqual([]);
      expect((await read()).idleSeconds).toBeGreaterThanOrEqual(1);
    });

    it('a forwarded request is use, and an open WebSocket keeps the gitspace in use until it closes', async () => {
      const bearer = { authorization: `Bearer ${routed.token}` };
      expect((await page(bearer)).status).toBe(200);
      expect((await read()).idleSeconds).toBeLessThan(0.5);
      const socket = await openWebSocket(routed.h.wsUrl(`/gitspaces/${ID}/pty`), bearer);
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await read()).toEqual({ idleSeconds: 0, openWebSockets: 1, openSshSessions: 0 });
      socket.close();
      let after = await read();
      for (let i = 0; i < 50 && after.openWebSockets > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        after = await read();
      }
      expect(after.openWebSockets).toBe(0);
      expect(after.idleSeconds).toBeLessThan(0.5);
    });
  });
});
