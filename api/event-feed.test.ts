import { sql } from 'kysely';
import type { Actor } from '../contracts/lifecycle';
import { silentLogger } from '../common/logger';
import { listenForChanges, LISTENER_APPLICATION_NAME, type ChangeListener } from '../db/change-listener';
import { openDatabase, type DatabaseLocation, type Db } from '../db/connect';
import type { EventRow } from '../db/schema';
import { createStore, type Store } from '../db/store';
import { appendEvent, CHANGES_CHANNEL, lockGitspace } from '../db/stores/events';
import { gitspaceRow, testDatabases } from '../test/support/databases';
import { until } from '../test/support/api-on-pglite';
import { EventFeed, type PresentedGitspace } from './event-feed';
import { ensureEmbeddedDefaults } from './server';

/**
 * The change feed wakes on the database's notifications (issue 16): its poll is set to a minute here, so within the
 * seconds these tests wait only a notification (or the listener's resync) can deliver anything. Writes come from
 * another connection pool, as from another API process or the control-plane worker.
 */
describe.each(testDatabases())('the event feed on %s', (name, makeLocation) => {
  const POLL_MS = 60_000;
  const actor: Actor = { type: 'reconciler' };
  let location: DatabaseLocation;
  let db: Db;
  let store: Store;
  /** Another connection pool on the same database (on PGlite, the one instance). */
  let writerDb: Db;
  let writer: Store;
  let feed: EventFeed;
  let listener: ChangeListener;
  let ownerId: string;
  const reads = { eventsAfter: 0, gitspaceVersions: 0 };
  /** The gitspaces each of the feed's event reads asked for. */
  let eventReads: string[][] = [];
  /** What each of the feed's version reads asked for. */
  let versionReads: Parameters<Store['gitspaceVersions']>[0][] = [];
  const unsubscribes: (() => void)[] = [];

  beforeAll(async () => {
    location = await makeLocation();
    db = await openDatabase(location);
    store = createStore(db);
    writerDb = location.kind === 'postgres' ? await openDatabase(location) : db;
    writer = createStore(writerDb);
    ownerId = (await store.createUser('owner', 'member')).user.id;
    await ensureEmbeddedDefaults(store, 'http://127.0.0.1:1', silentLogger);
    // The feed's own reads are counted: what the database sees from it, whatever the streams.
    const counted: Store = {
      ...store,
      eventsAfter: (cursors) => {
        reads.eventsAfter++;
        eventReads.push(cursors.map((cursor) => cursor.gitspaceId));
        return store.eventsAfter(cursors);
      },
      gitspaceVersions: (...args) => {
        reads.gitspaceVersions++;
        versionReads.push(args[0]);
        return store.gitspaceVersions(...args);
      },
    };
    feed = new EventFeed({ store: counted, pollMs: POLL_MS, coalesceMs: 100, logger: silentLogger });
    // It listens again a second after a break: long enough for a test to write while no one listens.
    listener = await listenForChanges(location, db, feed, silentLogger, { retryMs: 1000, maxRetryMs: 1000 });
  });
  afterAll(async () => {
    for (const unsubscribe of unsubscribes) unsubscribe();
    feed?.close();
    await listener?.close();
    if (writerDb !== db) await writerDb?.destroy();
    await db?.destroy();
  });

  const newGitspace = async (id: string) =>
    (await store.createGitspace(gitspaceRow(id, ownerId, { infrastructureId: 'local', machineId: 'local-default' })))
      .gitspace.id;

  /** An event stream on the feed from the gitspace's first event on: what it has been given. */
  const follow = async (gitspaceId: string) => {
    const received: EventRow[] = [];
    unsubscribes.push(await feed.subscribe(gitspaceId, 0, (events) => received.push(...events)));
    return received;
  };
  /** The admin's change stream on the feed: the gitspaces it has been given. */
  const followChanges = async () => {
    const received: PresentedGitspace[] = [];
    unsubscribes.push(
      await feed.subscribeChanges({ userId: 'admin', admin: true }, undefined, (gitspaces) =>
        received.push(...gitspaces),
      ),
    );
    return received;
  };
  const step = (gitspaceId: string, message: string) =>
    writer.recordEvent(gitspaceId, { type: 'step', message, actor });
  /** Lets reads already due finish. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

  it('delivers an event and an operation written on another connection when they commit, long before its poll', async () => {
    const id = await newGitspace('notified');
    const events = await follow(id);
    const changes = await followChanges();
    expect(events.map((event) => event.type)).toEqual(['created']);

    await step(id, 'ensure-machine');
    await until('the event', () => events.some((event) => event.message === 'ensure-machine'));

    // An operation records no event: its record and its end are notified on their own.
    await writer.recordOperation({ gitspaceId: id, action: 'start', workflowId: `gitspace-${id}`, runId: 'run-1' });
    await until('the new operation', () => changes.some((g) => g.id === id && g.operation?.status === 'running'));
    await writer.updateOperation('run-1', { status: 'failed' });
    await until('its end', () => changes.some((g) => g.id === id && g.operation?.status === 'failed'));

    // A rolled back change is never notified, so nothing is read for it.
    await settle();
    const before = { ...reads };
    await writerDb
      .transaction()
      .execute(async (trx) => {
        await lockGitspace(trx, id);
        await appendEvent(trx, id, { type: 'step', state: null, message: 'undone', data: {}, actor });
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await settle();
    expect(reads).toEqual(before);
  });

  it('reads a burst once for all its streams, and only the notified gitspaces', async () => {
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => newGitspace(`burst-${i}`)));
    const quiet = await newGitspace('quiet');
    // 10 streams on each gitspace, 5 on a quiet one, and 10 change streams: 115 streams.
    const streams = await Promise.all(ids.flatMap((id) => Array.from({ length: 10 }, () => follow(id))));
    const quietStreams = await Promise.all(Array.from({ length: 5 }, () => follow(quiet)));
    const changeStreams = await Promise.all(Array.from({ length: 10 }, () => followChanges()));
    await settle();
    const before = { ...reads };
    eventReads = [];
    versionReads = [];

    // One burst: a step on each gitspace, committed together.
    await writerDb.transaction().execute(async (trx) => {
      for (const id of ids) {
        await lockGitspace(trx, id);
        await appendEvent(trx, id, { type: 'step', state: null, message: 'burst', data: {}, actor });
      }
    });
    await until('every stream to get the burst', () =>
      streams.every((events) => events.some((event) => event.message === 'burst')),
    );
    const everyGitspace = (received: PresentedGitspace[]) => ids.every((id) => received.some((g) => g.id === id));
    await until('every change stream to get the burst', () => changeStreams.every(everyGitspace));
    await settle();
    expect(reads.eventsAfter - before.eventsAfter).toBe(1);
    expect(reads.gitspaceVersions - before.gitspaceVersions).toBe(1);
    expect(eventReads.flat().sort()).toEqual([...ids].sort());
    // The change streams' read too: the versions of the notified gitspaces, not of every one the viewers may see.
    expect(versionReads.map((filter) => [...(filter?.ids ?? ['(all)'])].sort())).toEqual([[...ids].sort()]);
    expect(quietStreams.every((events) => events.length === 1)).toBe(true);

    // Ten writers at once, each its own transaction: fewer reads than writes, still none per stream.
    const start = { ...reads };
    await Promise.all(ids.map((id) => step(id, 'together')));
    await until('every stream to get the writes', () =>
      streams.every((events) => events.some((event) => event.message === 'together')),
    );
    expect(reads.eventsAfter - start.eventsAfter).toBeLessThan(ids.length);
  });

  it("attack: a notification, real or forged, brings a member nothing of another member's gitspace", async () => {
    const mallory = (await store.createUser('mallory', 'member')).user.id;
    const own = (
      await store.createGitspace(
        gitspaceRow('mallory-own', mallory, { infrastructureId: 'local', machineId: 'local-default' }),
      )
    ).gitspace.id;
    const theirs = await newGitspace('not-mallorys');
    const seen: PresentedGitspace[] = [];
    unsubscribes.push(
      await feed.subscribeChanges({ userId: mallory, admin: false }, undefined, (gitspaces) => seen.push(...gitspaces)),
    );
    await settle();
    seen.length = 0;
    // The owner's real change, then notifications anyone who can reach the database could send: another's id,
    // a made-up one, an empty and an oversized payload.
    await step(theirs, 'private step');
    for (const payload of [theirs, 'gs-made-up', '', 'x'.repeat(7000)]) {
      await sql`select pg_notify(${CHANGES_CHANNEL}, ${payload})`.execute(writerDb);
    }
    // Mallory's own change still comes: the feed went on reading, and gave her only hers.
    await step(own, 'her step');
    await until("mallory's own change", () => seen.some((g) => g.id === own));
    await settle();
    expect(seen.map((g) => g.id).filter((id) => id !== own)).toEqual([]);
  });

  if (name === 'PostgreSQL') {
    it('listens again after its connection is killed, and reads what was written meanwhile', async () => {
      const listenerPids = async () =>
        (
          await sql<{ pid: number }>`
            select pid from pg_stat_activity
            where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(writerDb)
        ).rows.map((row) => row.pid);
      const [killed] = await listenerPids();
      expect(killed).toBeDefined();
      const id = await newGitspace('reconnects');
      const events = await follow(id);

      await sql`select pg_terminate_backend(${killed})`.execute(writerDb);
      await until('the killed connection to be gone', async () => !(await listenerPids()).includes(killed!));
      // Written while no one listens (it listens again a second later): lost, so only the listener's resync brings it.
      await step(id, 'while-down');
      await until('a new listener connection', async () => {
        const pids = await listenerPids();
        return pids.length === 1 && pids[0] !== killed;
      });
      await until('the event written while it was down', () => events.some((e) => e.message === 'while-down'));

      await step(id, 'after');
      await until('the event written after', () => events.some((e) => e.message === 'after'));
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3]);
    });
  }
});
