import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CamelCasePlugin, Kysely, Migrator, PostgresDialect, type Dialect } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { Database } from './schema';
import { migrationProvider } from './migrations';

export type Db = Kysely<Database>;

export type DatabaseLocation =
  /** A PostgreSQL server (DATABASE_URL). */
  | { kind: 'postgres'; url: string }
  /** Embedded PGlite in a directory; omitted directory means in memory. */
  | { kind: 'pglite'; dir?: string };

/** Opens the control-plane database and applies pending migrations. Only the control plane calls this. */
export async function openDatabase(location: DatabaseLocation): Promise<Db> {
  const { dialect, pglite } = await dialectFor(location);
  const db = new Kysely<Database>({ dialect, plugins: [new CamelCasePlugin()] });
  if (pglite) embedded.set(db, pglite);
  try {
    await migrate(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return db;
}

/** The embedded PGlite behind each database opened on one (db/change-listener.ts listens on it). */
const embedded = new WeakMap<Db, PGlite>();

/** The PGlite instance `db` runs on; undefined for a PostgreSQL server. */
export function embeddedPglite(db: Db): PGlite | undefined {
  return embedded.get(db);
}

async function dialectFor(location: DatabaseLocation): Promise<{ dialect: Dialect; pglite?: PGlite }> {
  if (location.kind === 'postgres') {
    // Timestamps as Date, bigint counts as numbers where they fit: the defaults of node-postgres are kept otherwise.
    return { dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: location.url, max: 10 }) }) };
  }
  if (location.dir) await mkdir(path.dirname(location.dir), { recursive: true, mode: 0o700 });
  const pglite = new PGlite(location.dir);
  return { dialect: new PGliteDialect(pglite), pglite };
}

export async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const reason = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${reason}`);
  }
}
