import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createApp } from '../api/app';
import type { AccessTokenIssuer } from '../api/access-tokens';
import { ensureEmbeddedDefaults } from '../api/server';
import { EventFeed } from '../api/event-feed';
import type { LifecycleService } from '../api/lifecycle-requests';
import type { ApiLimits } from '../api/limits';
import { TrustedProxies } from '../common/client-address';
import { silentLogger } from '../common/logger';
import { openDatabase, type Db } from '../db/connect';
import type { EventRow } from '../db/schema';
import { createStore, type Store } from '../db/store';

/**
 * Issue 10, finding 7 ("no limits"), as the attacks: a token sending without pause, a thousand guessed tokens, a
 * member creating gitspace after gitspace, and streams opened until the database drowns in polls. The REST API alone
 * on PGlite (no Temporal: nothing here starts a workflow), on a clock the test moves.
 */
describe('REST API limits', () => {
  let db: Db;
  let store: Store;
  let adminToken: string;
  let clock = Date.parse('2026-06-01T00:00:00Z');
  const servers: Server[] = [];
  /** How often the store was asked for events, by method: the event streams' load on the database. */
  const calls = { listEvents: 0, eventsAfter: 0, findUserByToken: 0 };

  beforeAll(async () => {
    db = await openDatabase({ kind: 'pglite' });
    store = createStore(db);
    adminToken = (await store.createUser('admin', 'admin')).token;
    await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
  });
  afterAll(async () => {
    for (const feed of feeds.values()) feed.close();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await db?.destroy();
  });

  /** The change feed of each API `serve` made, by its base URL. */
  const feeds = new Map<string, EventFeed>();

  /**
   * An API with these limits (the rest generous), on its own port; its store counts the event queries. Its change
   * feed reads from `feedStore` when one is given.
   */
  const serve = async (
    limits: Partial<ApiLimits>,
    feedStore?: Pick<Store, 'listEvents' | 'eventsAfter'>,
    trustedProxies?: TrustedProxies,
  ): Promise<string> => {
    const counted: Store = {
      ...store,
      listEvents: (...args) => {
        calls.listEvents++;
        return store.listEvents(...args);
      },
      eventsAfter: (...args) => {
        calls.eventsAfter++;
        return store.eventsAfter(...args);
      },
      findUserByToken: (...args) => {
        calls.findUserByToken++;
        return store.findUserByToken(...args);
      },
    };
    const eventFeed = new EventFeed({ store: feedStore ?? counted, pollMs: 50, logger: silentLogger });
    const app = createApp({
      store: counted,
      accessTokens: {} as AccessTokenIssuer,
      lifecycle: {
        request: () => Promise.reject(new Error('nothing starts in this test')),
      } as unknown as LifecycleService,
      logger: silentLogger,
      onInfrastructureCreated: () => Promise.resolve(),
      ready: () => Promise.resolve(),
      eventFeed,
      limits: {
        requestsPerMinute: 100_000,
        authFailuresPerMinute: 100_000,
        maxGitspacesPerUser: 100_000,
        maxEventStreamsPerUser: 100_000,
        ...limits,
      },
      now: () => clock,
      ...(trustedProxies ? { trustedProxies } : {}),
    });
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    servers.push(server);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
    feeds.set(base, eventFeed);
    return base;
  };

  const call = async (
    base: string,
    method: string,
    route: string,
    token: string,
    body?: unknown,
    forwardedFor?: string,
  ) => {
    const response = await fetch(`${base}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: text ? JSON.parse(text) : undefined,
    };
  };

  const gitspace = (name: string) => ({
    name,
    repository: { url: 'https://git.example.test/org/repo.git' },
    infrastructureId: 'local',
    machineId: 'local-default',
    start: false,
  });

  it('answers 429 with Retry-After once a token sends more than its requests a minute; other tokens go on', async () => {
    const base = await serve({ requestsPerMinute: 30 });
    const { token } = await store.createUser('busy', 'member');
    const statuses = [];
    for (let i = 0; i < 30; i++) statuses.push((await call(base, 'GET', '/gitspaces', token)).status);
    expect(statuses).toEqual(Array(30).fill(200));
    const refused = await call(base, 'GET', '/gitspaces', token);
    expect(refused.status).toBe(429);
    expect(refused.retryAfter).toBe('2');
    expect(refused.body.error).toEqual({
      code: 'rate_limited',
      message: 'this API token sent more than 30 requests a minute; try again in 2 s',
    });
    expect((await call(base, 'GET', '/gitspaces', adminToken)).status).toBe(200);
    clock += 2000;
    expect((await call(base, 'GET', '/gitspaces', token)).status).toBe(200);
    expect((await call(base, 'GET', '/gitspaces', token)).status).toBe(429);
  });

  it('slows down failed authentication from an address: 1,000 guessed tokens do not all get 401, nor reach the database', async () => {
    const base = await serve({ authFailuresPerMinute: 20 });
    const lookupsBefore = calls.findUserByToken;
    const answers: { status: number; retryAfter: string | null }[] = [];
    for (let batch = 0; batch < 10; batch++) {
      answers.push(
        ...(await Promise.all(
          Array.from({ length: 100 }, (_, i) => call(base, 'GET', '/gitspaces', `gsp_guess-${batch}-${i}`)),
        )),
      );
    }
    const unauthorized = answers.filter((a) => a.status === 401);
    const slowed = answers.filter((a) => a.status === 429);
    expect(unauthorized).toHaveLength(20);
    expect(slowed).toHaveLength(980);
    for (const answer of slowed) expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(calls.findUserByToken - lookupsBefore).toBe(20);
    // Locked out, a right token is refused too: a 200 would tell a guessed token from a wrong one.
    const right = await call(base, 'GET', '/gitspaces', adminToken);
    expect(right.status).toBe(429);
    expect(right.body.error.message).toMatch(/^too many failed authentications from 127\.0\.0\.1; try again in 3 s$/);
    expect((await fetch(`${base}/gitspaces`)).status).toBe(429);
    // The allowance refills: one guess every three seconds.
    clock += 3000;
    expect((await call(base, 'GET', '/gitspaces', 'gsp_one-more-guess')).status).toBe(401);
    expect((await call(base, 'GET', '/gitspaces', 'gsp_and-another')).status).toBe(429);
    clock += 60_000;
    expect((await call(base, 'GET', '/gitspaces', adminToken)).status).toBe(200);
  });

  it('counts failed authentications per client behind a trusted proxy: one guesser does not lock the others out', async () => {
    // Two API replicas behind nginx (docker-compose.yml): every request comes from the proxy's address.
    const base = await serve({ authFailuresPerMinute: 20 }, undefined, new TrustedProxies(['127.0.0.1']));
    const guesses = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(base, 'GET', '/gitspaces', `gsp_guess-${i}`, undefined, '203.0.113.5')),
    );
    expect(guesses.filter((a) => a.status === 401)).toHaveLength(20);
    expect(guesses.filter((a) => a.status === 429)).toHaveLength(20);
    const guesser = await call(base, 'GET', '/gitspaces', adminToken, undefined, '203.0.113.5');
    expect(guesser.status).toBe(429);
    expect(guesser.body.error.message).toMatch(/^too many failed authentications from 203\.0\.113\.5;/);
    // Another client behind the same proxy, and the proxy's own requests, go on.
    expect((await call(base, 'GET', '/gitspaces', adminToken, undefined, '198.51.100.7')).status).toBe(200);
    expect((await call(base, 'GET', '/gitspaces', adminToken)).status).toBe(200);
    // A client cannot pose as another by sending its own X-Forwarded-For through the proxy: the proxy appends the
    // address it saw, and that nearest untrusted hop is the one counted.
    const spoofed = await call(base, 'GET', '/gitspaces', adminToken, undefined, '198.51.100.7, 203.0.113.5');
    expect(spoofed.status).toBe(429);
    clock += 60_000;
  });

  it('believes X-Forwarded-For only from a trusted proxy: a guesser cannot name a new address per guess', async () => {
    const base = await serve({ authFailuresPerMinute: 20 });
    const guesses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call(base, 'GET', '/gitspaces', `gsp_guess-${i}`, undefined, `198.51.100.${i + 1}`),
      ),
    );
    expect(guesses.filter((a) => a.status === 401)).toHaveLength(20);
    expect(guesses.filter((a) => a.status === 429)).toHaveLength(20);
    const refused = await call(base, 'GET', '/gitspaces', adminToken, undefined, '192.0.2.1');
    expect(refused.body.error.message).toMatch(/^too many failed authentications from 127\.0\.0\.1;/);
    clock += 60_000;
  });

  it('does not take a burst of valid requests for guesses', async () => {
    const base = await serve({ authFailuresPerMinute: 5 });
    const { token } = await store.createUser('bursty', 'member');
    const answers = await Promise.all(Array.from({ length: 100 }, () => call(base, 'GET', '/gitspaces', token)));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    const mixed = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(base, 'GET', '/gitspaces', i % 2 === 0 ? token : adminToken)),
    );
    expect(mixed.map((a) => a.status)).toEqual(Array(40).fill(200));
  });

  it('refuses a gitspace beyond the per-user quota with 403 naming it, changing nothing; deleted ones do not count', async () => {
    const base = await serve({ maxGitspacesPerUser: 3 });
    const { user, token } = await store.createUser('quota-user', 'member');
    for (let i = 0; i < 3; i++)
      expect((await call(base, 'POST', '/gitspaces', token, gitspace(`q-${i}`))).status).toBe(201);
    const refused = await call(base, 'POST', '/gitspaces', token, gitspace('q-3'));
    expect(refused.status).toBe(403);
    expect(refused.body.error).toEqual({
      code: 'quota_exceeded',
      message: "quota reached: user 'quota-user' has 3 of 3 gitspaces; delete one before creating another",
    });
    expect((await call(base, 'GET', '/gitspaces', token)).body.items).toHaveLength(3);
    const [first] = await store.listGitspaces({ ownerId: user.id });
    await store.changeState(first!.id, { to: 'deleted', message: 'deleted', actor: { type: 'reconciler' } });
    expect((await call(base, 'POST', '/gitspaces', token, gitspace('q-3'))).status).toBe(201);
    expect((await call(base, 'POST', '/gitspaces', token, gitspace('q-4'))).status).toBe(403);
  });

  it('holds the quota when one user sends many creates at once, the admin included', async () => {
    const base = await serve({ maxGitspacesPerUser: 3 });
    const { token } = await store.createUser('racer', 'member');
    const racing = await Promise.all(
      Array.from({ length: 12 }, (_, i) => call(base, 'POST', '/gitspaces', token, gitspace(`race-${i}`))),
    );
    expect(racing.filter((r) => r.status === 201)).toHaveLength(3);
    expect(racing.filter((r) => r.status === 403)).toHaveLength(9);
    expect((await call(base, 'GET', '/gitspaces', token)).body.items).toHaveLength(3);
    const admin = await Promise.all(
      Array.from({ length: 5 }, (_, i) => call(base, 'POST', '/gitspaces', adminToken, gitspace(`admin-${i}`))),
    );
    expect(admin.filter((r) => r.status === 201)).toHaveLength(3);
    expect(admin.find((r) => r.status === 403)?.body.error.message).toBe(
      "quota reached: user 'admin' has 3 of 3 gitspaces; delete one before creating another",
    );
  });

  /** An event stream as a browser's EventSource holds it: the parsed events so far, and a way to close it. */
  const openStream = async (base: string, token: string, id: string) => {
    const abort = new AbortController();
    const response = await fetch(`${base}/gitspaces/${id}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    const events: { seq: number; message: string; actor: unknown }[] = [];
    if (response.ok) {
      void (async () => {
        const decoder = new TextDecoder();
        let buffered = '';
        try {
          for await (const chunk of response.body!) {
            buffered += decoder.decode(chunk, { stream: true });
            let end;
            while ((end = buffered.indexOf('\n\n')) >= 0) {
              const data = buffered
                .slice(0, end)
                .split('\n')
                .find((line) => line.startsWith('data: '));
              buffered = buffered.slice(end + 2);
              if (data) events.push(JSON.parse(data.slice('data: '.length)));
            }
          }
        } catch {
          // aborted
        }
      })();
    }
    return {
      response,
      events,
      close: () => abort.abort(),
      body: response.ok ? undefined : ((await response.json()) as any),
    };
  };

  const until = async (what: string, check: () => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('caps the event streams a user holds open with 429, and frees a place when one closes', async () => {
    const base = await serve({ maxEventStreamsPerUser: 3 });
    const { token } = await store.createUser('streamer', 'member');
    const created = await call(base, 'POST', '/gitspaces', token, gitspace('watched'));
    const id = created.body.gitspace.id;
    const streams = [];
    for (let i = 0; i < 3; i++) streams.push(await openStream(base, token, id));
    expect(streams.map((s) => s.response.status)).toEqual([200, 200, 200]);
    const fourth = await openStream(base, token, id);
    expect(fourth.response.status).toBe(429);
    expect(fourth.response.headers.get('retry-after')).toBe('5');
    expect(fourth.body.error).toEqual({
      code: 'rate_limited',
      message: "user 'streamer' has 3 of 3 event streams open; close one first",
    });
    // The JSON list is no stream: it is still served.
    expect((await call(base, 'GET', `/gitspaces/${id}/events`, token)).status).toBe(200);
    // Another user has places of their own.
    const admins = await openStream(base, adminToken, id);
    expect(admins.response.status).toBe(200);
    admins.close();
    streams[0]!.close();
    let again = await openStream(base, token, id);
    for (let i = 0; i < 50 && again.response.status === 429; i++) {
      await new Promise((r) => setTimeout(r, 20));
      again = await openStream(base, token, id);
    }
    expect(again.response.status).toBe(200);
    for (const stream of [...streams, again]) stream.close();
  });

  it('serves every open stream from one change feed: the event queries a second stay the same however many streams are open', async () => {
    const base = await serve({});
    const { token } = await store.createUser('watcher', 'member');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++)
      ids.push((await call(base, 'POST', '/gitspaces', token, gitspace(`feed-${i}`))).body.gitspace.id);

    /** Event queries in one second of quiet, with `count` streams open. */
    const queriesPerSecond = async (count: number) => {
      const streams = await Promise.all(
        Array.from({ length: count }, (_, i) => openStream(base, token, ids[i % ids.length]!)),
      );
      expect(streams.every((s) => s.response.status === 200)).toBe(true);
      // Every stream first gets its backlog: the `created` event.
      await until('the backlogs', () => streams.every((s) => s.events.length === 1));
      const before = calls.listEvents + calls.eventsAfter;
      await new Promise((r) => setTimeout(r, 1000));
      return { streams, queries: calls.listEvents + calls.eventsAfter - before };
    };
    const one = await queriesPerSecond(1);
    one.streams.forEach((s) => s.close());
    const many = await queriesPerSecond(60);
    // One read per 50 ms tick however many streams listen (a poll per stream would be 60 times as many).
    expect(one.queries).toBeLessThanOrEqual(21);
    expect(many.queries).toBeLessThanOrEqual(21);
    expect(many.queries).toBeLessThanOrEqual(one.queries + 3);

    // A new event still reaches every stream of its gitspace, once, in order.
    for (const id of ids) {
      await store.recordEvent(id, { type: 'step', message: `news for ${id}`, actor: { type: 'reconciler' } });
    }
    await until('the news on every stream', () => many.streams.every((s) => s.events.length === 2));
    many.streams.forEach((s, i) => {
      expect(s.events.map((e) => e.seq)).toEqual([1, 2]);
      expect(s.events[1]).toMatchObject({ message: `news for ${ids[i % ids.length]}`, actor: { type: 'reconciler' } });
    });
    many.streams.forEach((s) => s.close());

    // Nobody listens any more: the feed reads nothing.
    await until('every stream let go', () => feeds.get(base)!.subscribers === 0);
    const idle = calls.listEvents + calls.eventsAfter;
    await new Promise((r) => setTimeout(r, 300));
    expect(calls.listEvents + calls.eventsAfter).toBe(idle);
  });

  it("frees a stream's place however it ends: a failed backlog read, a client gone during it, a client that does not read", async () => {
    /** The feed's reads, as the test decides: the real store unless `backlog` says otherwise. */
    let backlog: ((gitspaceId: string) => Promise<EventRow[]>) | undefined;
    const base = await serve(
      { maxEventStreamsPerUser: 1 },
      {
        listEvents: (gitspaceId, afterSeq) => backlog?.(gitspaceId) ?? store.listEvents(gitspaceId, afterSeq),
        eventsAfter: (cursors) => store.eventsAfter(cursors),
      },
    );
    const feed = feeds.get(base)!;
    const { token } = await store.createUser('ender', 'member');
    const id = (await call(base, 'POST', '/gitspaces', token, gitspace('ended'))).body.gitspace.id as string;
    /** The one place is free again: a stream opens, gets its backlog, and is closed. */
    const placeIsFree = async () => {
      backlog = undefined;
      const stream = await openStream(base, token, id);
      expect(stream.response.status).toBe(200);
      await until('the backlog', () => stream.events.length === 1);
      stream.close();
      await until('the stream let go', () => feed.subscribers === 0);
    };
    await placeIsFree();

    // The backlog cannot be read: the stream is refused before it opens, and its place is free.
    backlog = () => Promise.reject(new Error('the database is away'));
    const failed = await fetch(`${base}/gitspaces/${id}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    });
    expect(failed.status).toBe(500);
    expect(((await failed.json()) as { error: { code: string } }).error.code).toBe('internal');
    expect(feed.subscribers).toBe(0);
    await placeIsFree();

    // The client goes away while its backlog is read: once read, the feed drops it and the place is free.
    let read!: (events: EventRow[]) => void;
    let asked = false;
    backlog = () => {
      asked = true;
      return new Promise((resolve) => (read = resolve));
    };
    const abort = new AbortController();
    const gone = fetch(`${base}/gitspaces/${id}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: abort.signal,
    }).catch(() => undefined);
    await until('the backlog read', () => asked);
    abort.abort();
    await gone;
    await new Promise((r) => setTimeout(r, 200));
    expect(feed.subscribers).toBe(1);
    read(await store.listEvents(id));
    await until('the feed dropped the stream', () => feed.subscribers === 0);
    await placeIsFree();

    // A client that reads nothing of a backlog larger than the stream may hold: cut off, and its place is free.
    const [created] = await store.listEvents(id);
    const padding = 'x'.repeat(1024);
    asked = false;
    backlog = () => {
      asked = true;
      return Promise.resolve(Array.from({ length: 8192 }, (_, i) => ({ ...created!, seq: i + 1, message: padding })));
    };
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    socket.pause();
    socket.write(
      `GET /api/v1/gitspaces/${id}/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n` +
        'accept: text/event-stream\r\n\r\n',
    );
    const cutOff = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await until('the backlog read', () => asked);
    await until('the feed dropped the stream', () => feed.subscribers === 0);
    await placeIsFree();
    socket.resume();
    await cutOff;
  });

  it('gives a client that reads all of a backlog larger than the buffer cap', async () => {
    const base = await serve({});
    const { token } = await store.createUser('historian', 'member');
    const id = (await call(base, 'POST', '/gitspaces', token, gitspace('long-history'))).body.gitspace.id as string;
    const padding = 'x'.repeat(1024);
    for (let i = 0; i < 2048; i++) {
      await store.recordEvent(id, { type: 'step', message: `${i} ${padding}`, actor: { type: 'reconciler' } });
    }
    const stream = await openStream(base, token, id);
    expect(stream.response.status).toBe(200);
    await until('the whole backlog', () => stream.events.length === 2049, 30_000);
    stream.close();
  });

  it('resumes a stream after Last-Event-ID without repeating what the client has', async () => {
    const base = await serve({});
    const { token } = await store.createUser('resumer', 'member');
    const id = (await call(base, 'POST', '/gitspaces', token, gitspace('resumed'))).body.gitspace.id;
    await store.recordEvent(id, { type: 'step', message: 'second', actor: { type: 'reconciler' } });
    const abort = new AbortController();
    const response = await fetch(`${base}/gitspaces/${id}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'last-event-id': '1' },
      signal: abort.signal,
    });
    const reader = response.body!.getReader();
    const { value } = await reader.read();
    const text = new TextDecoder().decode(value);
    expect(text).toMatch(/^: connected\n\nid: 2\nevent: step\n/);
    expect(text).not.toContain('id: 1\n');
    abort.abort();
  });
});
