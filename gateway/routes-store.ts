import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GITSPACE_ID_PATTERN } from '../common/access-token';

/** One gateway route: where a gitspace's IDE endpoint (its agent) answers. */
export interface GatewayRoute {
  gitspaceId: string;
  /** Origin of the gitspace agent, `http(s)://host:port`, never with a path. */
  target: string;
  /** ISO 8601 time of the last PUT. */
  updatedAt: string;
}

/** Thrown when a route's gitspace id is not a gitspace id (400). */
export class InvalidGitspaceIdError extends Error {
  constructor(readonly gitspaceId: string) {
    super(`'${gitspaceId}' is not a gitspace id (letters, digits, '-' and '_', at most 128 characters)`);
    this.name = 'InvalidGitspaceIdError';
  }
}

/** Thrown when a route target is not a plain `http(s)://host:port` origin (400). */
export class InvalidRouteTargetError extends Error {
  constructor(
    readonly target: unknown,
    readonly reason: string,
  ) {
    super(`target ${JSON.stringify(target)} is not usable: ${reason}; expected an origin like http://10.0.0.5:8089`);
    this.name = 'InvalidRouteTargetError';
  }
}

/** Thrown at load time when the routes file exists but cannot be understood: the gateway refuses to start. */
export class CorruptRoutesFileError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`the gateway routes file ${file} is unreadable (${reason}); fix or remove it`);
    this.name = 'CorruptRoutesFileError';
  }
}

/** The gateway's route table: in memory for lookups on every request, persisted so a restart keeps it. */
export interface RoutesStore {
  get(gitspaceId: string): GatewayRoute | undefined;
  list(): GatewayRoute[];
  /** Validates, stores and persists; resolves once the file is written. `created` is false for a replacement. */
  put(gitspaceId: string, target: unknown): Promise<{ route: GatewayRoute; created: boolean }>;
  /** Removes and persists; resolves with whether there was a route. */
  delete(gitspaceId: string): Promise<boolean>;
}

/** File name of the persisted route table inside the data dir. */
export const ROUTES_FILE = 'gateway-routes.json';

/** Checks a target and returns its canonical origin. */
export function parseRouteTarget(target: unknown): string {
  if (typeof target !== 'string') throw new InvalidRouteTargetError(target, 'it must be a string');
  // Checked on the raw text as well as the parse: the URL parser forgives backslashes, whitespace and dot segments.
  if (!/^https?:\/\/[A-Za-z0-9.\-[\]:]+\/?$/.test(target)) {
    throw new InvalidRouteTargetError(target, 'only a scheme, host and port are allowed (no credentials, path, query)');
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new InvalidRouteTargetError(target, 'it is not a URL');
  }
  if (!url.hostname) throw new InvalidRouteTargetError(target, 'it has no host');
  return url.origin;
}

/**
 * Loads the route table from `<dataDir>/gateway-routes.json` (absent: empty). Every change is written to a temporary
 * file and renamed over the old one, one write at a time, so a crash never leaves a half-written table.
 */
export async function createFileRoutesStore(dataDir: string, now: () => Date = () => new Date()): Promise<RoutesStore> {
  const file = path.join(dataDir, ROUTES_FILE);
  const routes = new Map<string, GatewayRoute>();
  for (const route of await load(file)) routes.set(route.gitspaceId, route);
  let writing: Promise<void> = Promise.resolve();

  const persist = () => {
    const snapshot = JSON.stringify({ version: 1, routes: [...routes.values()] }, null, 2);
    writing = writing.then(async () => {
      await mkdir(dataDir, { recursive: true });
      const temp = `${file}.${randomUUID()}.tmp`;
      try {
        await writeFile(temp, snapshot, { mode: 0o600 });
        await rename(temp, file);
      } finally {
        await rm(temp, { force: true });
      }
    });
    return writing;
  };

  return {
    get: (gitspaceId) => routes.get(gitspaceId),
    list: () => [...routes.values()].sort((a, b) => a.gitspaceId.localeCompare(b.gitspaceId)),
    async put(gitspaceId, target) {
      if (!GITSPACE_ID_PATTERN.test(gitspaceId)) throw new InvalidGitspaceIdError(gitspaceId);
      const route = { gitspaceId, target: parseRouteTarget(target), updatedAt: now().toISOString() };
      const created = !routes.has(gitspaceId);
      routes.set(gitspaceId, route);
      await persist();
      return { route, created };
    },
    async delete(gitspaceId) {
      const existed = routes.delete(gitspaceId);
      if (existed) await persist();
      return existed;
    },
  };
}

async function load(file: string): Promise<GatewayRoute[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CorruptRoutesFileError(file, (error as Error).message);
  }
  const list = (parsed as { routes?: unknown } | null)?.routes;
  if (!Array.isArray(list)) throw new CorruptRoutesFileError(file, 'no routes array');
  return list.map((entry: unknown, index) => {
    const { gitspaceId, target, updatedAt } = (entry ?? {}) as Partial<Record<keyof GatewayRoute, unknown>>;
    try {
      if (typeof gitspaceId !== 'string' || !GITSPACE_ID_PATTERN.test(gitspaceId)) {
        throw new InvalidGitspaceIdError(String(gitspaceId));
      }
      return {
        gitspaceId,
        target: parseRouteTarget(target),
        updatedAt: String(updatedAt ?? new Date(0).toISOString()),
      };
    } catch (error) {
      throw new CorruptRoutesFileError(file, `routes[${index}]: ${(error as Error).message}`);
    }
  });
}
