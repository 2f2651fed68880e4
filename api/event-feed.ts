import type { Logger } from '../common/logger';
import type { EventRow } from '../db/schema';
import type { Store } from '../db/store';
import type { GitspaceVersion } from '../db/stores/events';
import { presentGitspaces } from './routes/presenters';

/** A gitspace as GET /gitspaces/:id presents it. */
export type PresentedGitspace = Awaited<ReturnType<typeof presentGitspaces>>[number];

/** Who watches a change stream: the gitspaces they may see are theirs, or all for an administrator. */
export interface Viewer {
  userId: string;
  admin: boolean;
}

/** When a stream that nothing is sent on gets a comment, so proxies keep it open. */
export const DEFAULT_HEARTBEAT_MS = 15_000;

/** How often the feed reads everything when nothing is notified: a lost notification is found by then. */
export const DEFAULT_EVENT_POLL_MS = 30_000;

/**
 * The least time between two reads that notifications bring: changes notified meanwhile wait and are read together,
 * so however fast changes come, this bounds the reads (4 a second).
 */
export const DEFAULT_EVENT_COALESCE_MS = 250;

/** How long a change notified after a quiet spell waits for the rest of its burst. */
const GATHER_MS = 10;

interface Subscriber {
  gitspaceId: string;
  /** The last event this subscriber has been given. */
  last: number;
  /** False while its backlog is read; the feed leaves it alone until then. */
  ready: boolean;
  deliver(events: EventRow[]): void;
}

interface ChangeSubscriber {
  viewer: Viewer;
  /**
   * The version (`versionOf`) of each gitspace its client has been given, or knew by the cursor it resumed from: the
   * same thing as its cursor (`ChangeCursor`). Empty until its first read.
   */
  known: Map<string, string>;
  /** From a resumed cursor until its first comparison: how many settled gitspaces it counts without naming them. */
  unnamedSettled?: number;
  ready: boolean;
  deliver(gitspaces: PresentedGitspace[], cursor: string): void;
}

/**
 * One change feed for every event stream of this process: a read hands each stream its share of what changed, so the
 * database sees one query a read however many streams are open (one for the gitspaces' event streams, one for the
 * change streams), plus one per stream as it opens, and a read that finds changes reads them.
 *
 * When to read: the stores name each changed gitspace in a database notification sent when its transaction commits
 * (`notifyChange` in db/stores/events.ts), and the process's one listener (db/change-listener.ts) passes it to
 * `changed`. The feed reads it at once (after a few milliseconds that gather the rest of its burst), or, if it last
 * read less than `coalesceMs` ago, `coalesceMs` after that read, with whatever else was notified meanwhile: a burst is
 * one read, and however fast changes come, notifications bring at most one read per `coalesceMs`; for event streams, of
 * the notified gitspaces only. While anyone listens it also reads everything every `pollMs`, so a notification lost, or
 * missed while the listener reconnected (it calls `resync` when it listens again), is read then at the latest. Without
 * a listener the poll alone serves. Notifications reach every API process on the database.
 *
 * There is no global order to follow. A gitspace's events are numbered 1, 2, 3… without gaps under its row lock, so
 * they commit in that order; but across gitspaces, transactions commit in any order, and a serial id or a timestamp
 * taken as "everything up to here was seen" would pass over a row that commits after a later one was read. So every
 * position here is per gitspace:
 * - an event stream (`subscribe`) follows one gitspace from its last event number on;
 * - a change stream (`subscribeChanges`) keeps, for each gitspace its viewer may see, the version it was last given:
 *   the gitspace's last event number, how many operations it has had and the latest one's status
 *   (`Store.gitspaceVersions`, which covers everything GET /gitspaces/:id shows). Each read takes every version in one
 *   query and sends a gitspace whose version differs, as it is then. A change committed late is a version that differs
 *   at the next read: nothing is passed over. Changes within one read come as one message with the latest state.
 *   Its cursor (`id:`, resumed through Last-Event-ID) is those versions (`ChangeCursor`), so a stream resumed on any
 *   API process, or after a restart, sends exactly the gitspaces whose version is not the one its client had.
 */
export class EventFeed {
  private readonly watched = new Map<string, Set<Subscriber>>();
  private readonly changeSubscribers = new Set<ChangeSubscriber>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires. */
  private timerDue = Infinity;
  private reading = false;
  private closed = false;
  /** When the next read of everything is due; a resync makes it now. */
  private nextPollAt: number;
  private pollRequested = false;
  /** When the last read ended. */
  private lastReadAt = 0;
  /** Notified gitspaces that event streams watch, not read since. */
  private readonly notifiedGitspaces = new Set<string>();
  /** The gitspaces notified since the last read, for the change streams: a read of just their versions. */
  private readonly notifiedChanges = new Set<string>();
  /** Whether a change was notified, not read since by the change streams. */
  private changesNotified = false;
  /** How many changes have been notified: a stream whose first read saw this move may have missed one. */
  private notifications = 0;
  /** How often a stream with nothing to send gets a comment (so proxies keep it open). */
  readonly heartbeatMs: number;

  constructor(
    private readonly options: {
      store: Pick<Store, 'listEvents' | 'eventsAfter'> &
        Partial<Pick<Store, 'gitspaceVersions' | 'gitspacesByIds' | 'latestOperations' | 'listInfrastructures'>>;
      /** How often everything is read; with a listener this is only the safety net (`DEFAULT_EVENT_POLL_MS`). */
      pollMs: number;
      /** The least time between two reads that notifications bring (`DEFAULT_EVENT_COALESCE_MS`). */
      coalesceMs?: number;
      logger: Logger;
      heartbeatMs?: number;
    },
  ) {
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.nextPollAt = Date.now() + options.pollMs;
  }

  /** A change to this gitspace committed (the listener's notification): streams that may see it get it soon. */
  changed(gitspaceId: string): void {
    this.notifications++;
    if (this.watched.has(gitspaceId)) this.notifiedGitspaces.add(gitspaceId);
    if (this.changeSubscribers.size > 0) this.notifiedChanges.add(gitspaceId);
    this.schedule();
  }

  /** Changes may have gone unnotified (the listener listens again): everything is read soon. */
  resync(): void {
    // A stream that opens later reads everything new itself.
    if (this.subscribers === 0) return;
    this.pollRequested = true;
    this.schedule();
  }

  /**
   * Gives `deliver` the gitspace's events after `afterSeq` (its backlog, at once), then every new one in order, until
   * the returned function is called.
   */
  async subscribe(gitspaceId: string, afterSeq: number, deliver: (events: EventRow[]) => void): Promise<() => void> {
    const subscriber: Subscriber = { gitspaceId, last: afterSeq, ready: false, deliver };
    let subscribers = this.watched.get(gitspaceId);
    if (!subscribers) this.watched.set(gitspaceId, (subscribers = new Set()));
    subscribers.add(subscriber);
    const unsubscribe = () => {
      const current = this.watched.get(gitspaceId);
      current?.delete(subscriber);
      if (current?.size === 0) this.watched.delete(gitspaceId);
    };
    return this.admit(
      subscriber,
      unsubscribe,
      async () => this.give(subscriber, await this.options.store.listEvents(gitspaceId, afterSeq)),
      () => this.notifiedGitspaces.add(gitspaceId),
    );
  }

  /**
   * Gives `deliver` every gitspace the viewer may see that changes from now on, as GET /gitspaces/:id presents it, with
   * the stream's cursor after it; or, resuming from `cursor`, first every one whose version is not the one the cursor
   * names. Nothing comes in the cursor that the viewer may not see: it only decides which of theirs are sent. Before
   * this resolves, a new stream is given the cursor it starts from (and no gitspace), a resumed one what it missed.
   */
  async subscribeChanges(
    viewer: Viewer,
    cursor: ChangeCursor | undefined,
    deliver: (gitspaces: PresentedGitspace[], cursor: string) => void,
  ): Promise<() => void> {
    const subscriber: ChangeSubscriber = {
      viewer,
      known: new Map(cursor?.versions),
      ...(cursor ? { unnamedSettled: cursor.settled } : {}),
      ready: false,
      deliver,
    };
    this.changeSubscribers.add(subscriber);
    return this.admit(
      subscriber,
      () => this.changeSubscribers.delete(subscriber),
      async () => {
        const versions = await this.store().gitspaceVersions(viewer.admin ? {} : { ownerIds: [viewer.userId] });
        if (cursor) return this.giveChanges([subscriber], versions);
        for (const version of versions) subscriber.known.set(version.id, versionOf(version));
        subscriber.deliver([], encodeChangeCursor(subscriber.known));
      },
      () => (this.changesNotified = true),
    );
  }

  /**
   * Makes a new subscriber's first read, then leaves it to the feed's reads; one whose first read fails is dropped. A
   * change notified during its first read may be newer than that read, and the feed's read of it passed this subscriber
   * over (not ready): `readAgain` marks what it watches to be read once more.
   */
  private async admit(
    subscriber: { ready: boolean },
    unsubscribe: () => void,
    firstRead: () => Promise<void>,
    readAgain: () => void,
  ): Promise<() => void> {
    const notifications = this.notifications;
    try {
      await firstRead();
    } catch (error) {
      unsubscribe();
      throw error;
    }
    subscriber.ready = true;
    if (this.notifications !== notifications) readAgain();
    this.schedule();
    return unsubscribe;
  }

  /** How many streams listen now (for tests and metrics). */
  get subscribers(): number {
    let count = this.changeSubscribers.size;
    for (const subscribers of this.watched.values()) count += subscribers.size;
    return count;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Arms the next read, one at a time: soon when a change was notified or a resync asked, else at the poll. */
  private schedule(): void {
    if (this.closed || this.reading || (this.watched.size === 0 && this.changeSubscribers.size === 0)) return;
    const now = Date.now();
    const notified = this.notifiedGitspaces.size > 0 || this.notifiedChanges.size > 0 || this.changesNotified;
    const due = this.pollRequested ? now : Math.min(this.nextPollAt, notified ? this.notifiedReadAt(now) : Infinity);
    if (this.timer && this.timerDue <= due) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => void this.read(), Math.max(0, due - now));
    this.timer.unref();
  }

  /** When to read a notified change: at once after a quiet spell (its burst gathered), else `coalesceMs` after the last. */
  private notifiedReadAt(now: number): number {
    return Math.max(now + GATHER_MS, this.lastReadAt + (this.options.coalesceMs ?? DEFAULT_EVENT_COALESCE_MS));
  }

  /** Reads everything when the poll is due, else what was notified. */
  private async read(): Promise<void> {
    this.timer = undefined;
    this.timerDue = Infinity;
    this.reading = true;
    const poll = this.pollRequested || Date.now() >= this.nextPollAt;
    const gitspaces = poll ? undefined : new Set(this.notifiedGitspaces);
    // Every version when the poll is due or a stream asked for it, else only the notified gitspaces' versions.
    const allChanges = poll || this.changesNotified;
    const changes = allChanges ? undefined : new Set(this.notifiedChanges);
    this.pollRequested = false;
    this.notifiedGitspaces.clear();
    this.notifiedChanges.clear();
    this.changesNotified = false;
    try {
      await Promise.all([
        this.readEvents(gitspaces),
        allChanges || changes!.size > 0 ? this.readChanges(changes) : undefined,
      ]);
    } finally {
      this.lastReadAt = Date.now();
      if (poll) this.nextPollAt = this.lastReadAt + this.options.pollMs;
      this.reading = false;
      this.schedule();
    }
  }

  /** New events of the watched gitspaces, or of those of them in `only`. */
  private async readEvents(only: Set<string> | undefined): Promise<void> {
    // A gitspace is read from the oldest position any of its ready streams has reached.
    const cursors: { gitspaceId: string; afterSeq: number }[] = [];
    for (const [gitspaceId, subscribers] of this.watched) {
      if (only && !only.has(gitspaceId)) continue;
      let afterSeq = Infinity;
      for (const subscriber of subscribers) if (subscriber.ready) afterSeq = Math.min(afterSeq, subscriber.last);
      if (afterSeq !== Infinity) cursors.push({ gitspaceId, afterSeq });
    }
    if (cursors.length === 0) return;
    let rows: EventRow[];
    try {
      rows = await this.options.store.eventsAfter(cursors);
    } catch (error) {
      this.options.logger.warn('the event feed could not read new events; trying again', { error });
      return;
    }
    const byGitspace = new Map<string, EventRow[]>();
    for (const row of rows) {
      let events = byGitspace.get(row.gitspaceId);
      if (!events) byGitspace.set(row.gitspaceId, (events = []));
      events.push(row);
    }
    for (const { gitspaceId, afterSeq } of cursors) {
      const events = byGitspace.get(gitspaceId);
      if (!events) continue;
      for (const subscriber of this.watched.get(gitspaceId) ?? []) {
        // One that became ready during the read may be behind what was read: a later read serves it, without a gap
        // (a change newer than its first read was notified during it, or after, and is read again).
        if (subscriber.ready && subscriber.last >= afterSeq) this.give(subscriber, events);
      }
    }
  }

  /** The versions the change streams may see, of every gitspace or only of those in `only`. */
  private async readChanges(only: Set<string> | undefined): Promise<void> {
    // Only those ready when the read begins: one that became ready since has read newer versions itself.
    const serving = [...this.changeSubscribers].filter((subscriber) => subscriber.ready);
    if (serving.length === 0) return;
    const members = serving.some((s) => s.viewer.admin) ? undefined : [...new Set(serving.map((s) => s.viewer.userId))];
    // A resumed stream's first comparison needs every version (changedFor counts the ones its cursor does not name).
    const ids = only && !serving.some((s) => s.unnamedSettled !== undefined) ? [...only] : undefined;
    try {
      const versions = await this.store().gitspaceVersions({
        ...(members ? { ownerIds: members } : {}),
        ...(ids ? { ids } : {}),
      });
      await this.giveChanges(serving, versions);
    } catch (error) {
      this.options.logger.warn('the change feed could not read what changed; trying again', { error });
    }
  }

  /**
   * Sends each subscriber the gitspaces it may see whose version is not the one it knows, all read in one go, and
   * records the versions it was given.
   */
  private async giveChanges(subscribers: ChangeSubscriber[], versions: GitspaceVersion[]): Promise<void> {
    const changes = new Map<ChangeSubscriber, GitspaceVersion[]>();
    for (const subscriber of subscribers) {
      const changed = changedFor(subscriber, versions);
      if (changed.length > 0) changes.set(subscriber, changed);
    }
    if (changes.size === 0) return;
    const ids = new Set([...changes.values()].flatMap((changed) => changed.map((version) => version.id)));
    const store = this.store();
    const presented = new Map(
      (await presentGitspaces(store, await store.gitspacesByIds([...ids]))).map((g) => [g.id, g]),
    );
    for (const [subscriber, changed] of changes) {
      if (!this.changeSubscribers.has(subscriber)) continue;
      const gitspaces: PresentedGitspace[] = [];
      for (const version of changed) {
        subscriber.known.set(version.id, versionOf(version));
        const gitspace = presented.get(version.id);
        if (gitspace) gitspaces.push(gitspace);
      }
      // Oldest first, so a list that puts each new one on top ends newest first.
      gitspaces.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
      try {
        subscriber.deliver(gitspaces, encodeChangeCursor(subscriber.known));
      } catch (error) {
        this.options.logger.warn('a change stream failed to take its changes', { error });
      }
    }
  }

  /** The store's reads for change streams (optional in the options, for event streams alone). */
  private store(): Pick<Store, 'gitspaceVersions' | 'gitspacesByIds' | 'latestOperations'> &
    Partial<Pick<Store, 'listInfrastructures'>> {
    const { gitspaceVersions, gitspacesByIds, latestOperations, listInfrastructures } = this.options.store;
    if (!gitspaceVersions || !gitspacesByIds || !latestOperations) {
      throw new Error('this change feed was built without the store reads change streams need');
    }
    // The infrastructures give each gitspace its effective auto-stop, as GET /gitspaces/:id shows it.
    return {
      gitspaceVersions,
      gitspacesByIds,
      latestOperations,
      ...(listInfrastructures ? { listInfrastructures } : {}),
    };
  }

  private give(subscriber: Subscriber, events: EventRow[]): void {
    const fresh = events.filter((event) => event.seq > subscriber.last);
    if (fresh.length === 0) return;
    subscriber.last = fresh[fresh.length - 1]!.seq;
    try {
      subscriber.deliver(fresh);
    } catch (error) {
      this.options.logger.warn('an event stream failed to take its events', { error });
    }
  }
}

/**
 * A change stream's position: the version of each gitspace its client has (see `EventFeed`). A settled gitspace
 * (deleted, its last operation over) never changes again, so it is only counted: the cursor stays the size of the
 * gitspaces that can still change, not of the whole history.
 */
export interface ChangeCursor {
  /** Version by gitspace id, of the gitspaces that can still change. */
  versions: Map<string, string>;
  /** How many settled gitspaces the client has. */
  settled: number;
}

/** The version of a settled gitspace: it has no other. */
const SETTLED = 'x';

/**
 * What a gitspace's version is made of: its last event, the status of its latest operation and how many it has had
 * (`12s3`: event 12, the third operation succeeded).
 */
export function versionOf(version: GitspaceVersion): string {
  if (version.state === 'deleted' && version.operationStatus !== 'running') return SETTLED;
  return `${version.seq}${version.operationStatus?.[0] ?? 'n'}${version.operations}`;
}

/** The gitspaces the subscriber may see whose version is not the one it knows. */
function changedFor(subscriber: ChangeSubscriber, versions: GitspaceVersion[]): GitspaceVersion[] {
  const { viewer, known } = subscriber;
  const resumed = subscriber.unnamedSettled !== undefined;
  const visible = versions.filter((version) => viewer.admin || version.ownerId === viewer.userId);
  // A cursor is the client's word: of the gitspaces it names, only those the viewer may see are kept.
  if (resumed) {
    const ids = new Set(visible.map((version) => version.id));
    for (const id of known.keys()) if (!ids.has(id)) known.delete(id);
  }
  const changed: GitspaceVersion[] = [];
  const unnamed: GitspaceVersion[] = [];
  for (const version of visible) {
    const current = versionOf(version);
    const had = known.get(version.id);
    if (had === undefined && current === SETTLED && resumed) unnamed.push(version);
    else if (had !== current) changed.push(version);
  }
  // A resumed cursor counts the settled gitspaces its client has: as many settled ones as it does not name are those.
  // More, and some settled since (created and deleted while the client was away): which, it cannot say, so all go.
  if (unnamed.length > (subscriber.unnamedSettled ?? 0)) changed.push(...unnamed);
  else for (const version of unnamed) known.set(version.id, SETTLED);
  delete subscriber.unnamedSettled;
  return changed;
}

/** Past this, a cursor names no gitspace (a resume then sends all that can change): a header must stay well under 16 KiB. */
const MAX_CURSOR_LENGTH = 8 * 1024;
const CURSOR_FORMAT = /^v1\.(\d{1,9})\.(.*)$/s;
const CURSOR_ENTRY = /^([A-Za-z0-9][A-Za-z0-9_-]{0,127}):(\d{1,10}[nrsfc]\d{1,10})$/;

/** `v1.<settled count>.<id>:<version>,…` */
export function encodeChangeCursor(known: Map<string, string>): string {
  let settled = 0;
  const entries: string[] = [];
  for (const [id, version] of known) {
    if (version === SETTLED) settled++;
    else entries.push(`${id}:${version}`);
  }
  const named = entries.join(',');
  return `v1.${settled}.${named.length <= MAX_CURSOR_LENGTH ? named : ''}`;
}

/** The cursor a change stream gave out, or undefined for anything else. */
export function parseChangeCursor(text: string): ChangeCursor | undefined {
  const match = CURSOR_FORMAT.exec(text);
  if (!match) return undefined;
  const versions = new Map<string, string>();
  for (const entry of match[2] ? match[2].split(',') : []) {
    const parsed = CURSOR_ENTRY.exec(entry);
    if (!parsed) return undefined;
    versions.set(parsed[1]!, parsed[2]!);
  }
  return { versions, settled: Number(match[1]) };
}
