import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import {
  ROUTE_SECRET_HEADER,
  SSH_KEYS_HEADER,
  SSH_RENEW_PATH,
  SSH_TUNNEL_PATH,
  TUNNEL_ID_HEADER,
} from '../common/gateway-route';
import {
  ACCESS_TOKEN_AUDIENCE,
  ACCESS_TOKEN_CLAIMS,
  ACCESS_TOKEN_ISSUER,
  type AccessTokenScope,
} from '../contracts/access-token';
import { GATEWAY_COOKIE } from './gateway';
import { DEFAULT_RUN_ID, rawRequest, startHarness, statusOf, type Harness } from '../test/support/gateway-harness';
import { valueOf } from '../test/support/prometheus-text';
import { openWebSocket, UpgradeRefusedError } from '../test/support/websocket';

/**
 * The gateway's SSH lane (issue 15, part 1): an SSH tunnel is a WebSocket on `/gitspaces/<id>/_gitspaces/ssh`, opened
 * only with an ssh-scope token as a bearer; it reaches the agent at its own path with the route secret and the token's
 * key fingerprints (never a client's), ends when its token expires unless renewed, and ends when the route goes.
 * Scope-ssh tokens open nothing else.
 */

const ID = 'gs-ssh';
const OTHER = 'gs-ssh-other';
const KEYS = [`SHA256:${'a'.repeat(43)}`, `SHA256:${'b'.repeat(43)}`];

/** What a WebSocket upstream got in one handshake. */
interface Handshake {
  url: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * A gitspace machine that echoes WebSocket messages and records each handshake (and every plain request). Its 101
 * names a tunnel id of its own, which no client may ever see: the id is the gateway's.
 */
async function echoMachine(): Promise<{
  url: string;
  handshakes: Handshake[];
  requests: string[];
  close(): Promise<void>;
}> {
  const handshakes: Handshake[] = [];
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.end('machine');
  });
  const wss = new WebSocketServer({ server });
  wss.on('headers', (headers) => headers.push(`${TUNNEL_ID_HEADER}: chosen-by-the-machine`));
  wss.on('connection', (ws, req) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    ws.on('message', (data, binary) => ws.send(data, { binary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes,
    requests,
    close: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An open tunnel and the id the gateway gave it. */
interface Tunnel {
  ws: WebSocket;
  id: string | undefined;
  closed: Promise<void>;
}

/** Opens a WebSocket and keeps the 101's tunnel id; rejects with UpgradeRefusedError as openWebSocket does. */
function openTunnel(url: string, headers: Record<string, string>): Promise<Tunnel> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let id: string | undefined;
    const closed = new Promise<void>((done) => ws.once('close', () => done()));
    ws.once('upgrade', (res) => (id = res.headers[TUNNEL_ID_HEADER] as string | undefined));
    ws.once('open', () => resolve({ ws, id, closed }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(new UpgradeRefusedError(res.statusCode ?? 0, body)));
    });
    ws.once('error', reject);
  });
}

/** The refusal an upgrade gets (fails the test when it is accepted). */
async function refusalOf(promise: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UpgradeRefusedError) {
      return { status: error.status, code: (JSON.parse(error.body) as { error: { code: string } }).error.code };
    }
    throw error;
  }
  throw new Error('the upgrade was accepted');
}

/** Sends a message through a tunnel and waits for its echo. */
function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${text}`)), 5_000);
    ws.once('message', (data: Buffer) => {
      clearTimeout(timer);
      resolve(data.toString());
    });
    ws.send(Buffer.from(text));
  });
}

/** Resolves true when the promise settles within `ms`, false otherwise. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

describe('the gateway SSH lane', () => {
  let h: Harness;
  let machine: Awaited<ReturnType<typeof echoMachine>>;
  let otherMachine: Awaited<ReturnType<typeof echoMachine>>;
  let routeSecret: string;

  /** A token as the control plane issues one, by default of scope ssh naming {@link KEYS}, for an hour; scope `none`: no scope claim (a token from before scopes). */
  const token = (
    gitspaceId = ID,
    {
      scope = 'ssh' as AccessTokenScope | 'none',
      sshKeys = KEYS as string[] | undefined,
      userId = 'user-1',
      runId = DEFAULT_RUN_ID,
      expiresInSeconds = 3600,
    } = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    return h.sign({
      sub: userId,
      [ACCESS_TOKEN_CLAIMS.gitspaceId]: gitspaceId,
      [ACCESS_TOKEN_CLAIMS.runId]: runId,
      ...(scope !== 'none' ? { [ACCESS_TOKEN_CLAIMS.scope]: scope } : {}),
      ...(sshKeys && scope === 'ssh' ? { [ACCESS_TOKEN_CLAIMS.sshKeys]: sshKeys } : {}),
      aud: ACCESS_TOKEN_AUDIENCE,
      iss: ACCESS_TOKEN_ISSUER,
      iat: now,
      exp: now + expiresInSeconds,
    });
  };
  const browserToken = (gitspaceId = ID) => token(gitspaceId, { scope: 'browser' });
  const sshUrl = (gitspaceId = ID, spelling = SSH_TUNNEL_PATH) => h.wsUrl(`/gitspaces/${gitspaceId}${spelling}`);
  const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
  const renew = (tunnelId: string, value: string, gitspaceId = ID, headers: Record<string, string> = {}) =>
    fetch(`${h.publicUrl}/gitspaces/${gitspaceId}${SSH_RENEW_PATH}`, {
      method: 'POST',
      headers: { ...bearer(value), [TUNNEL_ID_HEADER]: tunnelId, ...headers },
    });
  const codeOf = async (response: Response) => ((await response.json()) as { error: { code: string } }).error.code;

  beforeAll(async () => {
    h = await startHarness();
    machine = await echoMachine();
    otherMachine = await echoMachine();
    ({ secret: routeSecret } = await h.route(ID, machine.url));
    await h.route(OTHER, otherMachine.url);
  });
  afterAll(async () => {
    await h.close();
    await machine.close();
    await otherMachine.close();
  });

  it('forwards an upgrade with an ssh token as a bearer to the agent path, with the route secret and the token keys only', async () => {
    const before = machine.handshakes.length;
    const tunnel = await openTunnel(`${sshUrl()}?keep=1`, {
      ...bearer(await token()),
      // A client's own claims about keys and tunnels never reach the machine.
      [SSH_KEYS_HEADER]: `SHA256:${'z'.repeat(43)}`,
      [TUNNEL_ID_HEADER]: 'chosen-by-the-client',
    });
    // The gateway's id alone: neither the client's nor the machine's.
    expect(tunnel.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(tunnel.id!, 'base64url')).toHaveLength(32);
    expect(await echo(tunnel.ws, 'SSH-2.0-OpenSSH_9.2')).toBe('SSH-2.0-OpenSSH_9.2');
    expect(machine.handshakes).toHaveLength(before + 1);
    const { url, headers } = machine.handshakes.at(-1)!;
    expect(url).toBe(SSH_TUNNEL_PATH);
    expect(headers[ROUTE_SECRET_HEADER]).toBe(routeSecret);
    expect(headers[SSH_KEYS_HEADER]).toBe(KEYS.join(','));
    expect(headers[TUNNEL_ID_HEADER]).toBeUndefined();
    expect(headers.authorization).toBeUndefined();
    tunnel.ws.close();
    await tunnel.closed;
  });

  it('gives every tunnel its own id', async () => {
    const value = await token();
    const [first, second] = await Promise.all([
      openTunnel(sshUrl(), bearer(value)),
      openTunnel(sshUrl(), bearer(value)),
    ]);
    expect(first.id).toBeDefined();
    expect(first.id).not.toBe(second.id);
    first.ws.close();
    second.ws.close();
    await Promise.all([first.closed, second.closed]);
  });

  it.each([
    ['/%5Fgitspaces/SSH', '/%5Fgitspaces/SSH'],
    ['//_GITSPACES/ssh', '//_GITSPACES/ssh'],
    ['/_gitspaces/ssh/', '/_gitspaces/ssh/'],
    ['/%255Fgitspaces/%73sh', '/%255Fgitspaces/%73sh'],
  ])('treats %s as the SSH path: bearer ssh token only, forwarded to the agent path', async (_name, spelling) => {
    const before = machine.handshakes.length;
    const tunnel = await openTunnel(sshUrl(ID, spelling), bearer(await token()));
    expect(tunnel.id).toBeDefined();
    expect(machine.handshakes.at(-1)!.url).toBe(SSH_TUNNEL_PATH);
    expect(machine.handshakes.at(-1)!.headers[SSH_KEYS_HEADER]).toBe(KEYS.join(','));
    tunnel.ws.close();
    await tunnel.closed;
    // A browser's session opens no SSH tunnel however the path is spelt.
    const cookie = `${GATEWAY_COOKIE}=${await browserToken()}`;
    expect(await refusalOf(openWebSocket(sshUrl(ID, spelling), { cookie }))).toMatchObject({ status: 403 });
    expect(await refusalOf(openWebSocket(sshUrl(ID, spelling), bearer(await browserToken())))).toEqual({
      status: 403,
      code: 'token_scope',
    });
    expect(machine.handshakes).toHaveLength(before + 1);
  });

  describe('refuses an SSH upgrade, and nothing reaches the machine', () => {
    let before: number;
    beforeEach(() => (before = machine.handshakes.length));
    afterEach(() => expect(machine.handshakes).toHaveLength(before));

    it('by cookie, whatever token it holds: 403', async () => {
      for (const value of [await token(), await browserToken()]) {
        const refusal = await refusalOf(openWebSocket(sshUrl(), { cookie: `${GATEWAY_COOKIE}=${value}` }));
        expect(refusal).toEqual({ status: 403, code: 'token_scope' });
      }
    });

    it('with the ssh token as ?token=: 403', async () => {
      const refusal = await refusalOf(openWebSocket(`${sshUrl()}?token=${await token()}`));
      expect(refusal).toEqual({ status: 403, code: 'token_scope' });
    });

    it('with a browser-scope token (or a token from before scopes): 403 token_scope', async () => {
      expect(await refusalOf(openWebSocket(sshUrl(), bearer(await browserToken())))).toEqual({
        status: 403,
        code: 'token_scope',
      });
      const unscoped = await token(ID, { scope: 'none' });
      expect(await refusalOf(openWebSocket(sshUrl(), bearer(unscoped)))).toEqual({ status: 403, code: 'token_scope' });
    });

    it('without a token: 401', async () => {
      expect(await refusalOf(openWebSocket(sshUrl()))).toEqual({ status: 401, code: 'token_missing' });
    });

    it('with an ssh token that names no keys: 403', async () => {
      const refusal = await refusalOf(openWebSocket(sshUrl(), bearer(await token(ID, { sshKeys: [] }))));
      expect(refusal.status).toBe(403);
    });

    it("with another gitspace's token: 403", async () => {
      expect(await refusalOf(openWebSocket(sshUrl(), bearer(await token(OTHER))))).toEqual({
        status: 403,
        code: 'token_other_gitspace',
      });
    });

    it('with an expired token: 401', async () => {
      const expired = await token(ID, { expiresInSeconds: -3600 });
      expect(await refusalOf(openWebSocket(sshUrl(), bearer(expired)))).toEqual({ status: 401, code: 'token_expired' });
    });

    it('with a token of an earlier run: 401 token_revoked', async () => {
      const earlier = await token(ID, { runId: 'run-0' });
      expect(await refusalOf(openWebSocket(sshUrl(), bearer(earlier)))).toEqual({ status: 401, code: 'token_revoked' });
    });

    it('on other reserved paths: 404', async () => {
      for (const spelling of ['/_gitspaces/', '/_gitspaces/ssh/more', '/%5FGitspaces/other', SSH_RENEW_PATH]) {
        expect((await refusalOf(openWebSocket(sshUrl(ID, spelling), bearer(await token())))).status).toBe(404);
      }
    });
  });

  describe('an ssh token opens nothing but SSH', () => {
    let before: { requests: number; handshakes: number };
    beforeEach(() => (before = { requests: machine.requests.length, handshakes: machine.handshakes.length }));
    afterEach(() => {
      expect(machine.requests).toHaveLength(before.requests);
      expect(machine.handshakes).toHaveLength(before.handshakes);
    });

    it('as ?token= on an IDE path: refused, and never exchanged for a cookie', async () => {
      for (const method of ['GET', 'HEAD', 'POST']) {
        const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/?token=${await token()}`, {
          method,
          redirect: 'manual',
        });
        expect(response.status).toBe(403);
        expect(response.headers.get('set-cookie')).toBeNull();
        if (method !== 'HEAD') expect(await codeOf(response)).toBe('token_scope');
      }
    });

    it('as a bearer or a cookie on an IDE path, for requests and WebSockets: 403 token_scope', async () => {
      const value = await token();
      for (const headers of [bearer(value), { cookie: `${GATEWAY_COOKIE}=${value}` }]) {
        const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/page`, { headers });
        expect(response.status).toBe(403);
        expect(await codeOf(response)).toBe('token_scope');
        expect(await refusalOf(openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty`), headers))).toEqual({
          status: 403,
          code: 'token_scope',
        });
      }
      const query = await refusalOf(openWebSocket(h.wsUrl(`/gitspaces/${ID}/pty?token=${value}`)));
      expect(query).toEqual({ status: 403, code: 'token_scope' });
    });

    it('a plain request to the SSH path: 400, use `gitspaces ssh`', async () => {
      const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/%5Fgitspaces/ssh`, {
        headers: bearer(await token()),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain('gitspaces ssh');
    });

    it('other reserved paths: 404', async () => {
      const response = await fetch(`${h.publicUrl}/gitspaces/${ID}/_GITSPACES/x`, {
        headers: bearer(await browserToken()),
      });
      expect(response.status).toBe(404);
    });
  });

  describe('renewal', () => {
    let tunnel: Tunnel;
    beforeAll(async () => (tunnel = await openTunnel(sshUrl(), bearer(await token()))));
    afterAll(async () => {
      tunnel.ws.close();
      await tunnel.closed;
    });

    it('is answered 204 by the gateway itself, never forwarded', async () => {
      const before = machine.requests.length;
      const response = await renew(tunnel.id!, await token());
      expect(response.status).toBe(204);
      expect(machine.requests).toHaveLength(before);
      // Another spelling of the renewal path is the same renewal.
      const spelt = await fetch(`${h.publicUrl}/gitspaces/${ID}/%5FGITSPACES//ssh/Renew`, {
        method: 'POST',
        headers: { ...bearer(await token()), [TUNNEL_ID_HEADER]: tunnel.id! },
      });
      expect(spelt.status).toBe(204);
      expect(machine.requests).toHaveLength(before);
    });

    it.each([
      ["another user's token", () => token(ID, { userId: 'user-2' }), ID, 403],
      ["another gitspace's token", () => token(OTHER), ID, 403],
      ["another gitspace's token at that gitspace's path", () => token(OTHER), OTHER, 404],
      ['a token of an earlier run', () => token(ID, { runId: 'run-0' }), ID, 401],
      ['a browser token', () => browserToken(), ID, 403],
      ['an expired token', () => token(ID, { expiresInSeconds: -3600 }), ID, 401],
    ])('with %s: refused', async (_name, make, gitspaceId, status) => {
      const response = await renew(tunnel.id!, await make(), gitspaceId);
      expect(response.status).toBe(status);
      expect(await echo(tunnel.ws, 'still open')).toBe('still open');
    });

    it('of an unknown tunnel id, or without one: 404 / 400', async () => {
      expect((await renew('A'.repeat(43), await token())).status).toBe(404);
      const without = await fetch(`${h.publicUrl}/gitspaces/${ID}${SSH_RENEW_PATH}`, {
        method: 'POST',
        headers: bearer(await token()),
      });
      expect(without.status).toBe(400);
    });

    it('only as a POST with a bearer: a cookie or ?token= is refused', async () => {
      const value = await token();
      const byCookie = await fetch(`${h.publicUrl}/gitspaces/${ID}${SSH_RENEW_PATH}`, {
        method: 'POST',
        headers: { cookie: `${GATEWAY_COOKIE}=${value}`, [TUNNEL_ID_HEADER]: tunnel.id! },
      });
      expect(byCookie.status).toBe(403);
      const byQuery = await fetch(`${h.publicUrl}/gitspaces/${ID}${SSH_RENEW_PATH}?token=${value}`, {
        method: 'POST',
        headers: { [TUNNEL_ID_HEADER]: tunnel.id! },
      });
      expect(byQuery.status).toBe(403);
      const get = await fetch(`${h.publicUrl}/gitspaces/${ID}${SSH_RENEW_PATH}`, {
        headers: { ...bearer(value), [TUNNEL_ID_HEADER]: tunnel.id! },
      });
      expect(get.status).toBe(405);
    });
  });

  describe('lifetime', () => {
    it('an unrenewed tunnel ends when its token expires, refused renewals notwithstanding', async () => {
      const tunnel = await openTunnel(sshUrl(), bearer(await token(ID, { expiresInSeconds: 2 })));
      expect(await echo(tunnel.ws, 'hello')).toBe('hello');
      expect((await renew(tunnel.id!, await token(ID, { userId: 'user-2' }))).status).toBe(403);
      expect((await renew(tunnel.id!, await token(ID, { runId: 'run-0' }))).status).toBe(401);
      expect(await settlesWithin(tunnel.closed, 4_000)).toBe(true);
      // An ended tunnel is no more: it cannot be renewed.
      expect((await renew(tunnel.id!, await token())).status).toBe(404);
    });

    it('a renewed tunnel outlives its first token', async () => {
      const tunnel = await openTunnel(sshUrl(), bearer(await token(ID, { expiresInSeconds: 2 })));
      expect((await renew(tunnel.id!, await token(ID, { expiresInSeconds: 60 }))).status).toBe(204);
      expect(await settlesWithin(tunnel.closed, 3_500)).toBe(false);
      expect(await echo(tunnel.ws, 'after the first token')).toBe('after the first token');
      tunnel.ws.close();
      await tunnel.closed;
    });

    it('a route DELETE (a stop) ends the tunnel at once, and it can no longer be renewed', async () => {
      const gone = 'gs-ssh-gone';
      const goneMachine = await echoMachine();
      try {
        await h.route(gone, goneMachine.url);
        const tunnel = await openTunnel(sshUrl(gone), bearer(await token(gone)));
        expect(await echo(tunnel.ws, 'before')).toBe('before');
        expect((await h.admin('DELETE', `/routes/${gone}`)).status).toBe(204);
        expect(await settlesWithin(tunnel.closed, 2_000)).toBe(true);
        expect((await renew(tunnel.id!, await token(gone), gone)).status).toBe(404);
      } finally {
        await goneMachine.close();
      }
    });

    it("a restart (the route registered by another run) ends the tunnel, and the earlier run's tokens renew nothing", async () => {
      const restarted = 'gs-ssh-restarted';
      const restartedMachine = await echoMachine();
      try {
        await h.route(restarted, restartedMachine.url);
        const tunnel = await openTunnel(sshUrl(restarted), bearer(await token(restarted)));
        expect(await echo(tunnel.ws, 'before')).toBe('before');
        expect((await h.route(restarted, restartedMachine.url, { runId: 'run-2' })).status).toBe(200);
        expect(await settlesWithin(tunnel.closed, 2_000)).toBe(true);
        expect((await renew(tunnel.id!, await token(restarted), restarted)).status).toBe(401);
        expect((await renew(tunnel.id!, await token(restarted, { runId: 'run-2' }), restarted)).status).toBe(404);
      } finally {
        await restartedMachine.close();
      }
    });
  });

  it('counts open SSH tunnels and token_scope refusals in the metrics, and the tunnel as use', async () => {
    const scrape = async () => (await fetch(`${h.adminUrl}/metrics`, { headers: bearer(h.adminToken) })).text();
    const refusals = (text: string) =>
      valueOf(text, 'gitspaces_gateway_auth_refusals_total', { reason: 'token_scope' }) ?? 0;
    const openTunnels = async () => valueOf(await scrape(), 'gitspaces_gateway_ssh_tunnels_open') ?? -1;
    /** The gauge once it reads `expected` (the gateway sees a close a moment after the client does), or its last value. */
    const settledOpenTunnels = async (expected: number) => {
      let value = await openTunnels();
      for (let i = 0; i < 50 && value !== expected; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        value = await openTunnels();
      }
      return value;
    };
    // Tunnels of earlier tests are closing still: counted from where the gauge settles.
    await settledOpenTunnels(0);
    const before = await scrape();
    const open = valueOf(before, 'gitspaces_gateway_ssh_tunnels_open')!;
    expect(open).toBeGreaterThanOrEqual(0);
    const tunnel = await openTunnel(sshUrl(), bearer(await token()));
    await refusalOf(openWebSocket(sshUrl(), bearer(await browserToken())));
    const during = await scrape();
    expect(valueOf(during, 'gitspaces_gateway_ssh_tunnels_open')).toBe(open + 1);
    expect(refusals(during) - refusals(before)).toBe(1);
    // The auto-stop sees it as use too (gateway/activity.ts); the refused upgrade is none.
    expect((await h.admin('GET', `/routes/${ID}/activity`)).body).toEqual({
      idleSeconds: 0,
      openWebSockets: 0,
      openSshSessions: open + 1,
    });
    tunnel.ws.close();
    await tunnel.closed;
    expect(await settledOpenTunnels(open)).toBe(open);
  });
});

describe('the gateway SSH lane under host routing', () => {
  let h: Harness;
  let machine: Awaited<ReturnType<typeof echoMachine>>;
  const host = `${ID}.gitspaces.test`;

  beforeAll(async () => {
    h = await startHarness({ domain: 'gitspaces.test' });
    machine = await echoMachine();
    await h.route(ID, machine.url);
  });
  afterAll(async () => {
    await h.close();
    await machine.close();
  });

  const sshToken = async () => {
    const now = Math.floor(Date.now() / 1000);
    return h.sign({
      sub: 'user-1',
      [ACCESS_TOKEN_CLAIMS.gitspaceId]: ID,
      [ACCESS_TOKEN_CLAIMS.runId]: DEFAULT_RUN_ID,
      [ACCESS_TOKEN_CLAIMS.scope]: 'ssh',
      [ACCESS_TOKEN_CLAIMS.sshKeys]: KEYS,
      aud: ACCESS_TOKEN_AUDIENCE,
      iss: ACCESS_TOKEN_ISSUER,
      iat: now,
      exp: now + 600,
    });
  };

  it.each(['/_gitspaces/ssh', '/%5FGITSPACES/Ssh', '/_gitspaces//ssh/'])(
    '%s on <id>.<domain> is the SSH path: bearer ssh token only',
    async (spelling) => {
      const tunnel = await openTunnel(h.wsUrl(spelling), { host, authorization: `Bearer ${await sshToken()}` });
      expect(tunnel.id).toBeDefined();
      expect(machine.handshakes.at(-1)).toMatchObject({
        url: SSH_TUNNEL_PATH,
        headers: { [SSH_KEYS_HEADER]: KEYS.join(',') },
      });
      tunnel.ws.close();
      await tunnel.closed;
      const cookie = `${GATEWAY_COOKIE}=${await sshToken()}`;
      expect(await refusalOf(openWebSocket(h.wsUrl(spelling), { host, cookie }))).toEqual({
        status: 403,
        code: 'token_scope',
      });
    },
  );

  it('refuses the ssh token on the IDE paths of <id>.<domain>, and other reserved paths', async () => {
    const get = (path: string) =>
      rawRequest(h.publicUrl, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const page = await get(`/?token=${await sshToken()}`);
    expect(statusOf(page)).toBe(403);
    expect(page).toContain('token_scope');
    expect(page).not.toMatch(/set-cookie/i);
    expect(statusOf(await get('/_gitspaces/other'))).toBe(404);
    expect(machine.requests).toEqual([]);
  });
});
