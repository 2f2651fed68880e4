import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApiClient } from './api-client';
import { ApiError, ApiUnreachableError } from './errors';

/** A stand-in API on loopback: answers each request with what `answer` returns, and records what was asked. */
async function standIn(answer: (url: URL) => { status: number; body: unknown; headers?: Record<string, string> }) {
  const asked: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    asked.push(url);
    const { status, body, headers } = answer(url);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/html' : 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, asked, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const gitspace = (id: string, state: string) => ({ id, name: id, state });

describe('the API client', () => {
  it('lists every gitspace by following nextCursor, asking for the states wanted', async () => {
    const pages: Record<string, { items: unknown[]; nextCursor?: string }> = {
      '': { items: [gitspace('a', 'running'), gitspace('b', 'stopped')], nextCursor: 'c1' },
      c1: { items: [gitspace('c', 'running')], nextCursor: 'c2' },
      c2: { items: [gitspace('d', 'running')] },
    };
    const api = await standIn((url) => ({ status: 200, body: pages[url.searchParams.get('cursor') ?? '']! }));
    try {
      const client = createApiClient({ url: api.url, token: 't' });
      const running = await client.listGitspaces(['running']);
      // An API that ignores `state` still gives the right answer: the client filters too.
      expect(running.map((g) => g.id)).toEqual(['a', 'c', 'd']);
      expect(api.asked.map((url) => url.pathname + url.search)).toEqual([
        '/api/v1/gitspaces?limit=200&state=running',
        '/api/v1/gitspaces?limit=200&state=running&cursor=c1',
        '/api/v1/gitspaces?limit=200&state=running&cursor=c2',
      ]);
      expect((await client.listGitspaces()).map((g) => g.id)).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      await api.close();
    }
  });

  it("turns the API's error into an ApiError with its code, message and fields", async () => {
    const fields = [{ path: 'repository.url', message: 'must name a host' }];
    const api = await standIn(() => ({
      status: 400,
      body: { error: { code: 'validation', message: 'the request body is invalid', fields } },
    }));
    try {
      const failure = createApiClient({ url: api.url, token: 't' }).post('/gitspaces', {});
      await expect(failure).rejects.toThrow(ApiError);
      await expect(failure).rejects.toMatchObject({ status: 400, code: 'validation', fields, transient: false });
    } finally {
      await api.close();
    }
  });

  it("describes an answer that is not the API's (a proxy's page) by its status, with Retry-After", async () => {
    const api = await standIn(() => ({ status: 503, body: '<html>busy</html>', headers: { 'retry-after': '5' } }));
    try {
      const failure = createApiClient({ url: api.url, token: 't' }).get('/gitspaces');
      await expect(failure).rejects.toThrow('the API answered 503 Service Unavailable; try again in 5 s');
      await expect(failure).rejects.toMatchObject({ retryAfterSeconds: 5, transient: true });
    } finally {
      await api.close();
    }
  });

  it('says the API cannot be reached, and why, when nothing listens', async () => {
    const api = await standIn(() => ({ status: 200, body: {} }));
    await api.close();
    const failure = createApiClient({ url: api.url, token: 't' }).get('/users');
    await expect(failure).rejects.toThrow(ApiUnreachableError);
    await expect(failure).rejects.toThrow(`cannot reach the Gitspaces API at ${api.url}: connect ECONNREFUSED`);
  });

  it("knows a member by GET /users, and asks GET /session who an administrator's token is", async () => {
    const ada = { id: 'usr-ada', name: 'ada', role: 'member' };
    const root = { id: 'usr-root', name: 'admin', role: 'admin' };
    let users = [ada];
    let session: { status: number; body: unknown } = {
      status: 404,
      body: { error: { code: 'not_found', message: 'no' } },
    };
    const api = await standIn((url) =>
      url.pathname.endsWith('/users') ? { status: 200, body: { items: users } } : session,
    );
    try {
      const client = createApiClient({ url: api.url, token: 't' });
      expect(await client.whoami()).toEqual(ada);
      users = [root, ada];
      expect(await client.whoami()).toBeUndefined();
      session = { status: 200, body: { user: root } };
      expect(await client.whoami()).toEqual(root);
    } finally {
      await api.close();
    }
  });
});
