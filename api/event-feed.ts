import type { Logger } from '../common/logger';
import type { EventRow } from '../db/schema';
import type { Store } from '../db/store';

interface Subscriber {
  gitspaceId: string;
  /** The last event this subscriber has been given. */
  last: number;
  /** False while its backlog is read; the feed leaves it alone until then. */
  ready: boolean;
  deliver(events: EventRow[]): void;
}

/**
 * One change feed for every event stream of this process: while anyone listens, one query every `pollMs` reads the
 * new events of all the gitspaces watched (a cursor per gitspace, which misses nothing: a gitspace's events are
 * numbered without gaps under its row lock) and hands each stream its share. So the database sees one query a
 * tick however many streams are open, plus one per stream as it opens (its backlog). Plain queries, so it works the
 * same on PGlite and on PostgreSQL, and with several API processes on one database.
 */
export class EventFeed {
  private readonly watched = new Map<string, Set<Subscriber>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: {
      store: Pick<Store, 'listEvents' | 'eventsAfter'>;
      pollMs: number;
      logger: Logger;
    },
  ) {}

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
    try {
      this.give(subscriber, await this.options.store.listEvents(gitspaceId, afterSeq));
    } catch (error) {
      unsubscribe();
      throw error;
    }
    subscriber.ready = true;
    this.schedule();
    return unsubscribe;
  }

  /** How many streams listen now (for tests and metrics). */
  get subscribers(): number {
    let count = 0;
    for (const subscribers of this.watched.values()) count += subscribers.size;
    return count;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer || this.closed || this.watched.size === 0) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => {
        this.timer = undefined;
        this.schedule();
      });
    }, this.options.pollMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    // A gitspace is read from the oldest position any of its ready streams has reached.
    const cursors: { gitspaceId: string; afterSeq: number }[] = [];
    for (const [gitspaceId, subscribers] of this.watched) {
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
        // One that became ready during the read may be behind what was read: the next tick serves it, without a gap.
        if (subscriber.ready && subscriber.last >= afterSeq) this.give(subscriber, events);
      }
    }
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
