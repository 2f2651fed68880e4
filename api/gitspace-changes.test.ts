import { sql } from 'kysely';
import { parseChangeCursor } from './event-feed';
import {
  openEventStream,
  startApiOnPglite,
  until,
  type ApiOnPglite,
  type OpenStream,
} from '../test/support/api-on-pglite';

/**
 * GET /api/v1/gitspaces/changes (issue 14): one stream of the caller's gitspaces as they change, fed by the one change
 * feed. The test plays the lifecycle workflow's part through the store (state changes, steps, an operation that ends),
 * as the bookkeeping activities do. The REST API alone on PGlite.
 */
describe('the change stream', () => {
  let api: ApiOnPglite;
  let ada: { id: string; token: string };
  let bob: { id: string; token: string };
  const streams: OpenStream[] = [];

  beforeAll(async () => {
    api = await startApiOnPglite({ heartbeatMs: 200 });
    ada = await api.member('ada');
    bob = await api.member('bob');
  });
  afterAll(async () => {
    for (const stream of streams) stream.close();
    await api?.close();
  });

  const changes = async (token: string, lastEventId?: string) => {
    const stream = await openEventStream(`${api.base}/gitspaces/changes`, token, lastEventId);
    streams.push(stream);
    return stream;
  };
  interface Presented {
    id: string;
    state: string;
    lastError?: { message: string };
    operation?: { status: string; step?: string; action: string };
  }
  const received = (stream: OpenStream): Presented[] =>
    stream.messages.map((message) => {
      expect(message.event).toBe('gitspace');
      return JSON.parse(message.data!) as Presented;
    });
  /** The last thing the stream said about a gitspace. */
  const latest = (stream: OpenStream, id: string) => received(stream).findLast((gitspace) => gitspace.id === id);
  const get = async (id: string, token = api.adminToken) => (await api.call('GET', `/gitspaces/${id}`, token)).body;
  const actor = { type: 'reconciler' } as const;

  /** A start as the workflow records it: the operation, the state, then each step; `fail` ends it in error. */
  const runStart = async (id: string, runId: string, steps: string[], fail?: string) => {
    await api.store.recordOperation({ gitspaceId: id, action: 'start', workflowId: `gitspace-${id}`, runId });
    await api.store.changeState(id, { to: 'starting', actor, message: 'start requested', lastError: null });
    for (const step of steps) {
      await api.store.updateOperation(runId, { step });
      await api.store.recordEvent(id, { type: 'step', message: step, data: { step }, actor });
    }
    if (fail) {
      const error = { action: 'start', step: steps.at(-1)!, message: fail };
      await api.store.changeState(id, { to: 'error', actor, message: fail, url: null, lastError: error });
      await api.store.updateOperation(runId, { status: 'failed' });
    } else {
      await api.store.changeState(id, {
        to: 'running',
        actor,
        message: 'running',
        url: 'http://gw/x',
        lastError: null,
      });
      // The operation ends after the state change, in a transaction of its own, and appends no event.
      await api.store.updateOperation(runId, { status: 'succeeded', step: null });
    }
  };

  it('opens at once with a comment and keeps quiet streams alive with heartbeats', async () => {
    const stream = await changes(ada.token);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.response.headers.get('cache-control')).toBe('no-cache');
    await until('the first bytes', () => stream.raw().length > 0);
    expect(stream.raw()).toMatch(/^: connected\n\nid: v1\.0\.\n\n/);
    await until('two heartbeats', () => stream.comments.filter((c) => c === 'heartbeat').length >= 2);
    expect(stream.messages).toEqual([]);
    stream.close();

    // The gitspace event stream opens the same way.
    const id = await api.createGitspace(ada.token, 'heartbeats');
    const events = await openEventStream(`${api.base}/gitspaces/${id}/events`, ada.token);
    streams.push(events);
    await until('its backlog', () => events.messages.length === 1);
    expect(events.raw()).toMatch(/^: connected\n\nid: 1\nevent: created\n/);
    await until('a heartbeat', () => events.comments.includes('heartbeat'));
    events.close();
  });

  it('shows each caller exactly the gitspaces they may see: creation, steps, an error, a start, a deletion', async () => {
    const admin = await changes(api.adminToken);
    const adas = await changes(ada.token);
    const bobs = await changes(bob.token);
    for (const stream of [admin, adas, bobs]) await until('the cursor', () => stream.lastEventId !== undefined);

    const adaSpace = await api.createGitspace(ada.token, 'adas-space');
    const bobSpace = await api.createGitspace(bob.token, 'bobs-space');
    await until('the creations', () => latest(admin, adaSpace) !== undefined && latest(admin, bobSpace) !== undefined);
    await until("ada's creation", () => latest(adas, adaSpace)?.state === 'stopped');

    await runStart(adaSpace, 'run-ada-1', ['ensure-machine', 'wait-for-agent'], 'the agent did not answer');
    await until('the error', () => latest(adas, adaSpace)?.operation?.status === 'failed');
    expect(latest(adas, adaSpace)).toMatchObject({
      state: 'error',
      lastError: { message: 'the agent did not answer' },
      operation: { action: 'start', status: 'failed', step: 'wait-for-agent' },
    });
    expect(latest(adas, adaSpace)).toEqual(await get(adaSpace, ada.token));

    await runStart(adaSpace, 'run-ada-2', ['ensure-machine', 'prepare-workspace']);
    await until('the start', () => latest(adas, adaSpace)?.operation?.status === 'succeeded');
    // What the stream said last is exactly what GET shows: the operation's end, which appends no event, included.
    expect(latest(adas, adaSpace)).toEqual(await get(adaSpace, ada.token));
    expect(latest(adas, adaSpace)).toMatchObject({ state: 'running', operation: { status: 'succeeded' } });

    await api.store.changeState(adaSpace, { to: 'deleted', actor, message: 'deleted', url: null });
    await until('the deletion', () => latest(adas, adaSpace)?.state === 'deleted');
    await until("the admin's deletion", () => latest(admin, adaSpace)?.state === 'deleted');

    // A step is news while it is the current step: a stream that polls fast enough sees each one (here the test
    // waits for each before the next).
    await runStart(bobSpace, 'run-bob-1', []);
    for (const step of ['ensure-machine', 'wait-for-agent', 'prepare-workspace']) {
      await api.store.updateOperation('run-bob-1', { step });
      await api.store.recordEvent(bobSpace, { type: 'step', message: step, data: { step }, actor });
      await until(`step ${step}`, () => latest(bobs, bobSpace)?.operation?.step === step);
    }
    await until(
      "the admin's view of bob's steps",
      () => latest(admin, bobSpace)?.operation?.step === 'prepare-workspace',
    );

    // Bob's stream has seen his latest news, given after ada's: none of ada's came to him, nor any of his to ada.
    expect(received(bobs).every((gitspace) => gitspace.id === bobSpace)).toBe(true);
    expect(received(adas).every((gitspace) => gitspace.id === adaSpace)).toBe(true);
    expect(new Set(received(admin).map((gitspace) => gitspace.id))).toEqual(new Set([adaSpace, bobSpace]));
    // Every message carries a gitspace as GET /gitspaces/:id presents it.
    for (const gitspace of received(admin))
      expect(Object.keys(gitspace)).toEqual(
        expect.arrayContaining(['id', 'state', 'owner', 'repository', 'createdAt', 'updatedAt']),
      );
  });

  it('sends a change that commits after a later one was read, whatever its timestamp', async () => {
    const id = await api.createGitspace(ada.token, 'late-commit');
    const other = await api.createGitspace(ada.token, 'read-first');
    const stream = await changes(ada.token);
    await until('the cursor', () => stream.lastEventId !== undefined);
    await api.store.recordEvent(other, { type: 'step', message: 'read first', actor });
    await until('the first change', () => latest(stream, other) !== undefined);
    // A transaction that began long ago commits now: its event is dated before everything the stream has seen.
    await api.store.changeState(id, {
      to: 'error',
      actor,
      message: 'late',
      lastError: { action: 'start', step: 'finish', message: 'late' },
    });
    await sql`update events set created_at = '2000-01-01T00:00:00Z' where gitspace_id = ${id}`.execute(api.db);
    await until('the late change', () => latest(stream, id)?.state === 'error');
  });

  it('resumes from Last-Event-ID with exactly what changed meanwhile, even on another process', async () => {
    const carol = await api.member('carol');
    const quiet = await api.createGitspace(carol.token, 'quiet');
    const changed = await api.createGitspace(carol.token, 'changed');
    const settled = await api.createGitspace(carol.token, 'settled-before');
    await api.store.changeState(settled, { to: 'deleted', actor, message: 'deleted' });
    const first = await changes(carol.token);
    await until('the cursor', () => first.lastEventId !== undefined);
    await api.store.recordEvent(changed, { type: 'step', message: 'seen', actor });
    await until('a change', () => latest(first, changed) !== undefined);
    const cursor = first.lastEventId!;
    first.close();

    // Meanwhile: one changes, one is created, one has an operation recorded (no event).
    const ending = await api.createGitspace(carol.token, 'ending');
    await api.store.recordOperation({ gitspaceId: ending, action: 'stop', workflowId: 'w', runId: 'run-ending' });
    await api.store.changeState(changed, { to: 'error', actor, message: 'meanwhile' });
    const born = await api.createGitspace(carol.token, 'born');

    // Another API process on the same database: the cursor is all it needs.
    const other = await startApiOnPglite({ sameDatabaseAs: api });
    try {
      const resumed = await openEventStream(`${other.base}/gitspaces/changes`, carol.token, cursor);
      streams.push(resumed);
      expect(resumed.response.status).toBe(200);
      await until('the missed changes', () => received(resumed).length >= 3);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(
        received(resumed)
          .map((g) => g.id)
          .sort(),
      ).toEqual([changed, born, ending].sort());

      // The operation recorded meanwhile ends: no event, still news.
      await api.store.updateOperation('run-ending', { status: 'cancelled' });
      await until('the operation end', () => latest(resumed, ending)?.operation?.status === 'cancelled');

      // Resuming from the newest id: nothing was missed, so nothing is sent.
      const newest = resumed.lastEventId!;
      resumed.close();
      const again = await changes(carol.token, newest);
      await until('the stream', () => again.raw().startsWith(': connected'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(again.messages).toEqual([]);
      again.close();
      // The cursor counts the deleted gitspace and names the others.
      const parsed = parseChangeCursor(newest)!;
      expect(parsed.settled).toBe(1);
      expect([...parsed.versions.keys()].sort()).toEqual([quiet, changed, ending, born].sort());

      // One created and deleted while away is news too. The cursor only counts deleted ones, so it cannot say which of
      // the two deleted ones is new: both come, and none of those that did not change.
      const gone = await api.createGitspace(carol.token, 'gone');
      await api.store.changeState(gone, { to: 'deleted', actor, message: 'deleted' });
      const last = await changes(carol.token, newest);
      await until('the one gone meanwhile', () => latest(last, gone)?.state === 'deleted');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(
        received(last)
          .map((g) => g.id)
          .sort(),
      ).toEqual([gone, settled].sort());
      expect(parseChangeCursor(last.lastEventId!)!.settled).toBe(2);
      last.close();
    } finally {
      await other.close();
    }
  });

  it("gives a member nothing of another's through a forged Last-Event-ID, and refuses one it did not give out", async () => {
    const bobSpace = await api.createGitspace(bob.token, 'not-for-ada');
    // A cursor naming bob's gitspace with a version it does not have, and counting no settled gitspace.
    const forged = `v1.0.${bobSpace}:1n0`;
    const stream = await changes(ada.token, forged);
    expect(stream.response.status).toBe(200);
    await api.store.recordEvent(bobSpace, { type: 'step', message: 'bob only', actor });
    const mine = await api.createGitspace(ada.token, 'after-forgery');
    await until("ada's own news", () => latest(stream, mine) !== undefined);
    expect(received(stream).map((g) => g.id)).not.toContain(bobSpace);
    expect(stream.lastEventId).not.toContain(bobSpace);

    for (const garbled of [
      'garbage',
      'v1.x.',
      'v2.0.',
      `v1.0.${bobSpace}`,
      `v1.0.${bobSpace}:1z0`,
      'v1.0.a:1n0,',
      '1',
    ]) {
      const refused = await fetch(`${api.base}/gitspaces/changes`, {
        headers: { authorization: `Bearer ${ada.token}`, accept: 'text/event-stream', 'last-event-id': garbled },
      });
      expect({ garbled, status: refused.status, body: await refused.json() }).toEqual({
        garbled,
        status: 400,
        body: {
          error: expect.objectContaining({
            code: 'invalid_request',
            fields: [{ path: 'header.Last-Event-ID', message: 'is not an id this change stream gave out' }],
          }),
        },
      });
    }
  });

  it('is a stream only, and is not a gitspace id', async () => {
    const json = await api.call('GET', '/gitspaces/changes', ada.token);
    expect(json.status).toBe(400);
    expect(json.body.error.fields).toEqual([{ path: 'header.Accept', message: 'must accept text/event-stream' }]);
    for (const method of ['DELETE', 'POST', 'PATCH']) {
      const answer = await api.call(method, '/gitspaces/changes', ada.token);
      expect({ method, status: answer.status, allow: answer.headers.get('allow') }).toEqual({
        method,
        status: 405,
        allow: 'GET',
      });
    }
    expect((await api.call('DELETE', '/gitspaces/gs-nothing', ada.token)).status).toBe(404);
    const document = (await api.call('GET', '/openapi.json', ada.token)).body;
    expect(Object.keys(document.paths['/gitspaces/changes'])).toEqual(['get']);
  });

  it('counts against the per-user stream cap, with the event streams', async () => {
    const capped = await startApiOnPglite({ limits: { maxEventStreamsPerUser: 2 } });
    try {
      const dave = await capped.member('dave');
      const id = await capped.createGitspace(dave.token, 'capped');
      const one = await openEventStream(`${capped.base}/gitspaces/changes`, dave.token);
      const two = await openEventStream(`${capped.base}/gitspaces/${id}/events`, dave.token);
      expect([one.response.status, two.response.status]).toEqual([200, 200]);
      const three = await openEventStream(`${capped.base}/gitspaces/changes`, dave.token);
      expect(three.response.status).toBe(429);
      expect(three.response.headers.get('retry-after')).toBe('5');
      one.close();
      await until('a free place', async () => {
        const next = await openEventStream(`${capped.base}/gitspaces/changes`, dave.token);
        next.close();
        return next.response.status === 200;
      });
      two.close();
      await until('the feed let go', () => capped.feed.subscribers === 0);
    } finally {
      await capped.close();
    }
  });
});
