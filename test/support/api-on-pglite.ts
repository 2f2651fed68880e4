import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessTokenIssuer } from '../../api/access-tokens';
import { createApp } from '../../api/app';
import { EventFeed } from '../../api/event-feed';
import type { LifecycleService } from '../../api/lifecycle-requests';
import type { ApiLimits } from '../../api/limits';
import { ensureEmbeddedDefaults } from '../../api/server';
import { silentLogger } from '../../common/logger';
import { openDatabase, type Db } from '../../db/connect';
import { createStore, type Store } from '../../db/store';

/**
 * The REST API alone on PGlite, for the fast tests of what it reads (lists, streams): the real app, store and change
 * feed; no Temporal (nothing here starts a workflow: a test plays the workflow's part through the store). Generous
 * limits unless told otherwise.
 */
export interface ApiOnPglite {
  db: Db;
  store: Store;
  feed: EventFeed;
  /** `http://127.0.0.1:<port>/api/v1` */
  base: string;
  adminToken: string;
  /** A new member: their id and token. */
  member(name: string): Promise<{ id: string; token: string }>;
  /** Calls the API with a bearer token; the JSON answer, if any. */
  call(
    method: string,
    route: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; headers: Headers; body: any }>;
  /** Creates a gitspace (not started) through the API; its id. */
  createGitspace(token: string, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function startApiOnPglite(
  options: {
    pollMs?: number;
    heartbeatMs?: number;
    limits?: Partial<ApiLimits>;
    /** Another API process on that one's database (which stays open when this one closes). */
    sameDatabaseAs?: ApiOnPglite;
    /** Accept infrastructures of the `simulated` provider (GITSPACES_ENABLE_SIMULATED_PROVIDER=1). */
    simulatedProvider?: boolean;
  } = {},
): Promise<ApiOnPglite> {
  const shared = options.sameDatabaseAs;
  const db = shared?.db ?? (await openDatabase({ kind: 'pglite' }));
  const store = shared?.store ?? createStore(db);
  const adminToken = shared?.adminToken ?? (await store.createUser('admin', 'admin')).token;
  if (!shared) await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
  const feed = new EventFeed({
    store,
    pollMs: options.pollMs ?? 50,
    logger: silentLogger,
    ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
  });
  const app = createApp({
    store,
    accessTokens: {} as AccessTokenIssuer,
    lifecycle: {
      request: () => Promise.reject(new Error('nothing starts in this test')),
    } as unknown as LifecycleService,
    logger: silentLogger,
    onInfrastructureCreated: () => Promise.resolve(),
    ready: () => Promise.resolve(),
    eventFeed: feed,
    ...(options.simulatedProvider ? { simulatedProvider: true } : {}),
    limits: {
      requestsPerMinute: 100_000,
      authFailuresPerMinute: 100_000,
      maxGitspacesPerUser: 100_000,
      maxEventStreamsPerUser: 100,
      ...options.limits,
    },
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;

  const call: ApiOnPglite['call'] = async (method, route, token, body) => {
    const response = await fetch(`${base}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };

  return {
    db,
    store,
    feed,
    base,
    adminToken,
    async member(name) {
      const { user, token } = await store.createUser(name, 'member');
      return { id: user.id, token };
    },
    call,
    async createGitspace(token, name) {
      const created = await call('POST', '/gitspaces', token, {
        name,
        repository: { url: 'https://git.example.test/org/repo.git' },
        infrastructureId: 'local',
        machineId: 'local-default',
        start: false,
      });
      if (created.status !== 201)
        throw new Error(`creating ${name}: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body.gitspace.id as string;
    },
    async close() {
      feed.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      if (!shared) await db.destroy();
    },
  };
}

/** One message of a server-sent-event stream: its fields as sent (`id` only when the message carried one). */
export interface StreamMessage {
  event?: string;
  data?: string;
  id?: string;
}

/** A server-sent-event stream read as an EventSource reads it: messages, comments and the last event id so far. */
export interface OpenStream {
  response: Response;
  messages: StreamMessage[];
  comments: string[];
  /** The last `id:` the server sent (what an EventSource would send back as Last-Event-ID). */
  lastEventId: string | undefined;
  /** Everything received, as sent. */
  raw(): string;
  close(): void;
}

/** Opens `url` as an event stream with a bearer token (and a Last-Event-ID to resume from). */
export async function openEventStream(url: string, token: string, lastEventId?: string): Promise<OpenStream> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'text/event-stream',
      ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
    },
    signal: abort.signal,
  });
  let raw = '';
  const stream: OpenStream = {
    response,
    messages: [],
    comments: [],
    lastEventId,
    raw: () => raw,
    close: () => abort.abort(),
  };
  if (response.ok) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      try {
        for await (const chunk of response.body!) {
          const text = decoder.decode(chunk, { stream: true });
          raw += text;
          buffered += text;
          let end;
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            const message: StreamMessage = {};
            for (const line of buffered.slice(0, end).split('\n')) {
              if (line.startsWith(':')) stream.comments.push(line.slice(1).trim());
              else if (line.startsWith('id: ')) message.id = stream.lastEventId = line.slice(4);
              else if (line.startsWith('event: ')) message.event = line.slice(7);
              else if (line.startsWith('data: ')) message.data = line.slice(6);
            }
            buffered = buffered.slice(end + 2);
            if (message.data !== undefined) stream.messages.push(message);
          }
        }
      } catch {
        // closed
      }
    })();
  }
  return stream;
}

/** Waits until `check` holds (polling), or fails naming `what`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
