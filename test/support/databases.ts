import { Client } from 'pg';
import type { DatabaseLocation } from '../../db/connect';
import type { Store } from '../../db/store';

/**
 * The databases the database tests run on: PGlite always, and the real PostgreSQL server named by
 * GITSPACES_TEST_DATABASE_URL (which CI starts and sets; in CI its absence is an error, not a skip).
 */
export function testDatabases(): [string, () => Promise<DatabaseLocation>][] {
  const url = process.env.GITSPACES_TEST_DATABASE_URL;
  if (!url && process.env.CI) throw new Error('GITSPACES_TEST_DATABASE_URL must name a PostgreSQL server in CI');
  const databases: [string, () => Promise<DatabaseLocation>][] = [['PGlite', async () => ({ kind: 'pglite' })]];
  if (url) databases.push(['PostgreSQL', () => freshPostgresDatabase(url)]);
  return databases;
}

/** A new, empty database on the server for one test file, so files running at once never share tables. */
async function freshPostgresDatabase(url: string): Promise<DatabaseLocation> {
  const name = `gitspaces_t_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const target = new URL(url);
  target.pathname = `/${name}`;
  return { kind: 'postgres', url: target.toString() };
}

/**
 * What the store tests start from: a member to own their gitspaces, and the infrastructure `inf` with the catalogue
 * machine `inf-m` their gitspaces run on.
 */
export async function seedStore(store: Store): Promise<{ ownerId: string }> {
  const ownerId = (await store.createUser('owner', 'member')).user.id;
  await store.createInfrastructure({
    id: 'inf',
    name: 'inf',
    provider: 'local',
    config: {},
    gatewayUrl: 'http://127.0.0.1:1',
  });
  await store.createMachine({
    id: 'inf-m',
    infrastructureId: 'inf',
    name: 'm',
    machineType: 'local',
    diskSizeGb: 10,
    region: null,
    zone: null,
    image: null,
  });
  return { ownerId };
}

/** A gitspace's values for `Store.createGitspace`, on `seedStore`'s machine unless told another. */
export function gitspaceRow(
  id: string,
  ownerId: string,
  options: { name?: string; infrastructureId?: string; machineId?: string } = {},
) {
  return {
    id,
    name: options.name ?? id,
    ownerId,
    repositoryUrl: 'https://example.test/r.git',
    repositoryBranch: null,
    repositoryTokenSealed: null,
    repositoryTokenRef: null,
    infrastructureId: options.infrastructureId ?? 'inf',
    machineId: options.machineId ?? 'inf-m',
    ide: 'terminal' as const,
  };
}
