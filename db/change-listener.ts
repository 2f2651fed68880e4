import pg from 'pg';
import type { Logger } from '../common/logger';
import { embeddedPglite, type DatabaseLocation, type Db } from './connect';
import { CHANGES_CHANNEL } from './stores/events';

/** What a listener tells (api/event-feed.ts implements it). */
export interface ChangeHandlers {
  /** A change to this gitspace committed. */
  changed(gitspaceId: string): void;
  /** Listening (again): changes committed before now may have gone unheard, so everything is to be read again. */
  resync(): void;
}

export interface ChangeListener {
  close(): Promise<void>;
}

/** How PostgreSQL shows the listener's connection (pg_stat_activity.application_name). */
export const LISTENER_APPLICATION_NAME = 'gitspaces-change-listener';

/**
 * Listens on `CHANGES_CHANNEL`, where the stores name each gitspace whose change commits (db/stores/events.ts). On a
 * PostgreSQL server: one connection of its own, opened again after it breaks; on PGlite: the instance's own listen,
 * in process. Resolves once it listens, or once a first attempt has failed (it keeps trying).
 */
export async function listenForChanges(
  location: DatabaseLocation,
  db: Db,
  handlers: ChangeHandlers,
  logger: Logger,
  options: { retryMs?: number; maxRetryMs?: number } = {},
): Promise<ChangeListener> {
  if (location.kind === 'postgres') {
    const listener = new PostgresChangeListener(location.url, handlers, logger, options);
    await listener.connect();
    return listener;
  }
  const pglite = embeddedPglite(db);
  if (!pglite) throw new Error('this database was not opened on PGlite by openDatabase');
  const unlisten = await pglite.listen(CHANGES_CHANNEL, (gitspaceId) => handlers.changed(gitspaceId));
  handlers.resync();
  return { close: () => unlisten() };
}

/**
 * One LISTEN connection. A notification is lost while it is down, so each time it listens again it asks for a resync;
 * it tries again after a break with a backoff that doubles from `retryMs` (250 ms) up to `maxRetryMs` (15 s).
 */
class PostgresChangeListener implements ChangeListener {
  private client: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly handlers: ChangeHandlers,
    private readonly logger: Logger,
    private readonly options: { retryMs?: number; maxRetryMs?: number },
  ) {}

  async connect(): Promise<void> {
    this.retry = undefined;
    // Keep-alive, so a connection that silently went away is found out (the feed's poll covers the time until then).
    const client = new pg.Client({
      connectionString: this.url,
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
    });
    this.client = client;
    let lost = false;
    const onLost = (error?: unknown) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('notification');
      client.end().catch(() => undefined);
      if (this.closed) return;
      const delay = Math.min(this.options.maxRetryMs ?? 15_000, (this.options.retryMs ?? 250) * 2 ** this.failures++);
      this.logger.warn('the change listener lost its database connection; listening again soon', {
        error: error instanceof Error ? error.message : 'connection ended',
        retryInMs: delay,
      });
      this.retry = setTimeout(() => void this.connect(), delay);
      this.retry.unref();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (message) => {
      if (message.channel === CHANGES_CHANNEL && message.payload) this.handlers.changed(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    } catch (error) {
      onLost(error);
      return;
    }
    if (lost) return;
    if (this.closed) {
      await client.end();
      return;
    }
    if (this.failures > 0) this.logger.info('the change listener listens again');
    this.failures = 0;
    this.handlers.resync();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.client?.end();
  }
}
