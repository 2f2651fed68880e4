import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { valueOf } from '../test/support/prometheus-text';
import { startRouted, type Routed } from '../test/support/gateway-harness';

/**
 * `GET /metrics` on the gateway's admin listener: admin token only, and after real traffic on the public listener
 * (forwarded, redirected, refused requests; a WebSocket tunnel) it counts what happened.
 */
const ID = 'gs-metered';

describe('gateway metrics', () => {
  let routed: Routed;
  let wsUpstream: http.Server;
  let wss: WebSocketServer;

  beforeAll(async () => {
    routed = await startRouted(ID);
    // A second gitspace whose machine is a WebSocket echo.
    wsUpstream = http.createServer((_req, res) => res.end('ok'));
    wss = new WebSocketServer({ server: wsUpstream });
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(data)));
    await new Promise<void>((resolve) => wsUpstream.listen(0, '127.0.0.1', resolve));
    await routed.h.route('gs-echo', `http://127.0.0.1:${(wsUpstream.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    await routed?.close();
    wss?.close();
    await new Promise((resolve) => wsUpstream?.close(resolve));
  });

  const scrape = async (token = routed.h.adminToken) =>
    fetch(`${routed.h.adminUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('is on the admin listener only, and refused without the admin token', async () => {
    const without = await scrape('');
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer');
    expect(await without.text()).not.toContain('gitspaces_gateway');
    expect((await scrape('wrong')).status).toBe(401);
    // A user's access token is no admin token.
    expect((await scrape(routed.token)).status).toBe(401);
    // The public listener has no metrics: it answers as for any path outside a gitspace.
    expect((await fetch(`${routed.h.publicUrl}/metrics`)).status).toBe(404);
    const post = await fetch(`${routed.h.adminUrl}/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${routed.h.adminToken}` },
    });
    expect(post.status).toBe(405);
  });

  it('counts requests and upgrades by outcome, auth refusals by reason, and the machine latency', async () => {
    const { h, token } = routed;
    const before = await (await scrape()).text();
    const count = (text: string, name: string, labels: Record<string, string> = {}) => valueOf(text, name, labels) ?? 0;

    for (let i = 0; i < 5; i++) {
      const ok = await fetch(`${h.publicUrl}/gitspaces/${ID}/page-${i}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(ok.status).toBe(200);
      await ok.text();
    }
    // A first visit with the token in the query: exchanged for a cookie (303); the bare prefix: a redirect (308).
    const exchange = await fetch(`${h.publicUrl}/gitspaces/${ID}/?token=${token}`, { redirect: 'manual' });
    expect(exchange.status).toBe(303);
    const slash = await fetch(`${h.publicUrl}/gitspaces/${ID}`, { redirect: 'manual' });
    expect(slash.status).toBe(308);
    // Refusals: no token, a forged one (twice), another gitspace's token, a gitspace with no route.
    expect((await fetch(`${h.publicUrl}/gitspaces/${ID}/x`)).status).toBe(401);
    for (let i = 0; i < 2; i++) {
      const forged = await fetch(`${h.publicUrl}/gitspaces/${ID}/x`, {
        headers: { authorization: 'Bearer abc.def.ghi' },
      });
      expect(forged.status).toBe(401);
    }
    const other = await h.token('gs-other');
    expect(
      (await fetch(`${h.publicUrl}/gitspaces/${ID}/x`, { headers: { authorization: `Bearer ${other}` } })).status,
    ).toBe(403);
    expect(
      (await fetch(`${h.publicUrl}/gitspaces/gs-other/x`, { headers: { authorization: `Bearer ${other}` } })).status,
    ).toBe(404);

    // A WebSocket through the gateway, held open while scraped, then a refused upgrade (no token).
    const echoToken = await h.token('gs-echo');
    const socket = new WebSocket(h.wsUrl('/gitspaces/gs-echo/ws'), {
      headers: { authorization: `Bearer ${echoToken}` },
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    socket.send('ping');
    await new Promise((resolve) => socket.once('message', resolve));
    const refusedUpgrade = new WebSocket(h.wsUrl('/gitspaces/gs-echo/ws'));
    const refusedStatus = await new Promise<number>((resolve) => {
      refusedUpgrade.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refusedUpgrade.once('error', () => resolve(-1));
    });
    expect(refusedStatus).toBe(401);

    const during = await scrape();
    expect(during.status).toBe(200);
    expect(during.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await during.text();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      count(text, name, labels) - count(before, name, labels);

    expect(delta('gitspaces_gateway_requests_total', { outcome: 'forwarded' })).toBe(5);
    expect(delta('gitspaces_gateway_requests_total', { outcome: 'redirected' })).toBe(2);
    expect(delta('gitspaces_gateway_requests_total', { outcome: 'refused' })).toBe(5);
    expect(delta('gitspaces_gateway_websocket_upgrades_total', { outcome: 'forwarded' })).toBe(1);
    expect(delta('gitspaces_gateway_websocket_upgrades_total', { outcome: 'refused' })).toBe(1);
    expect(delta('gitspaces_gateway_auth_refusals_total', { reason: 'token_missing' })).toBe(2);
    expect(delta('gitspaces_gateway_auth_refusals_total', { reason: 'token_invalid' })).toBe(2);
    expect(delta('gitspaces_gateway_auth_refusals_total', { reason: 'token_other_gitspace' })).toBe(1);
    expect(count(text, 'gitspaces_gateway_open_websockets')).toBe(1);
    expect(count(text, 'gitspaces_gateway_open_connections')).toBeGreaterThanOrEqual(1);
    expect(delta('gitspaces_gateway_upstream_response_seconds_count', { kind: 'http' })).toBe(5);
    expect(delta('gitspaces_gateway_upstream_response_seconds_count', { kind: 'websocket' })).toBe(1);
    expect(delta('gitspaces_gateway_upstream_response_seconds_bucket', { kind: 'http', le: '+Inf' })).toBe(5);
    // The process's own metrics are there too.
    expect(count(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    socket.close();
    await new Promise((resolve) => socket.once('close', resolve));
    const deadline = Date.now() + 5_000;
    let open = 1;
    while (open !== 0 && Date.now() < deadline) {
      open = count(await (await scrape()).text(), 'gitspaces_gateway_open_websockets');
      if (open !== 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(open).toBe(0);
  });

  it('counts a machine that does not answer as upstream_failed', async () => {
    const { h } = routed;
    await h.route('gs-down', 'http://127.0.0.1:9');
    const token = await h.token('gs-down');
    const before = valueOf(await (await scrape()).text(), 'gitspaces_gateway_requests_total', {
      outcome: 'upstream_failed',
    });
    const response = await fetch(`${h.publicUrl}/gitspaces/gs-down/`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(502);
    const after = valueOf(await (await scrape()).text(), 'gitspaces_gateway_requests_total', {
      outcome: 'upstream_failed',
    });
    expect((after ?? 0) - (before ?? 0)).toBe(1);
  });
});
