import { EventEmitter } from 'node:events';
import http, { type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../common/logger';
import { listen } from '../common/net';
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
});
