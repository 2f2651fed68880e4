import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GITSPACE_ID_PATTERN } from '../contracts/access-token';
import { ROUTE_SECRET_PATTERN } from '../common/gateway-route';

/**
 * One gateway route: where a gitspace's IDE endpoint (its agent) answers, the secret the gateway adds to everything it
 * forwards there, and the start run whose access tokens it accepts (common/gateway-route.ts).
 */
export interface GatewayRoute {
  gitspaceId: string;
  /** Origin of the gitspace agent, `http(s)://host:port`, never with a path. */
  target: string;
  /** The per-start route secret: only in the routes file (0600) and in what the gateway forwards, never listed. */
  secret: string;
  /** The start workflow run that registered the route; access tokens must name it. */
  runId: string;
  /** ISO 8601 time of the last PUT. */
  updatedAt: string;
}

/** A route as the admin API shows it: without its secret. */
export type ListedRoute = Omit<GatewayRoute, 'secret'>;

/** Run ids: printable ASCII without spaces (Temporal's are UUIDs). */
const RUN_ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

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

/** Thrown when a route's secret or run id is missing or malformed (400); `field` names which. */
export class InvalidRouteRegistrationError extends Error {
  constructor(
    readonly field: 'secret' | 'runId',
    reason: string,
  ) {
    super(`${field} ${reason}`);
    this.name = 'InvalidRouteRegistrationError';
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
  /** Every route, without secrets. */
  list(): ListedRoute[];
  /**
   * Validates a registration (`{ target, secret, runId }`, see common/gateway-route.ts), stores and persists it;
   * resolves once the file is written. `created` is false for a replacement.
   */
  put(gitspaceId: string, registration: unknown): Promise<{ route: GatewayRoute; created: boolean }>;
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

/** Checks a registration body and returns the route's fields in canonical form. */
export function parseRouteRegistration(registration: unknown): Pick<GatewayRoute, 'target' | 'secret' | 'runId'> {
  const { target, secret, runId } = (registration ?? {}) as Record<string, unknown>;
  const parsedTarget = parseRouteTarget(target);
  if (typeof secret !== 'string' || !ROUTE_SECRET_PATTERN.test(secret)) {
    throw new InvalidRouteRegistrationError('secret', 'must be 43 to 256 base64url characters (32+ random bytes)');
  }
  if (typeof runId !== 'string' || !RUN_ID_PATTERN.test(runId)) {
    throw new InvalidRouteRegistrationError('runId', 'must be the start workflow run id (1 to 256 visible characters)');
  }
  return { target: parsedTarget, secret, runId };
}

/** A route without its secret. */
export function listed({ gitspaceId, target, runId, updatedAt }: GatewayRoute): ListedRoute {
  return { gitspaceId, target, runId, updatedAt };
}

/**
 * Loads the route table from `<dataDir>/gateway-routes.json` (absent: empty). Every change is written to a temporary
 * file (0600: it holds the route secrets) and renamed over the old one, one write at a time, so a crash never leaves a
 * half-written table. Entries of an older version without a secret or run id are dropped: no agent of this version
 * would accept what the gateway forwards to them, and the next start registers the route again.
 */
export async function createFileRoutesStore(dataDir: string, now: () => Date = () => new Date()): Promise<RoutesStore> {
  const file = path.join(dataDir, ROUTES_FILE);
  const routes = new Map<string, GatewayRoute>();
  for (const route of await load(file)) routes.set(route.gitspaceId, route);
  let writing: Promise<void> = Promise.resolve();

  const persist = () => {
    const snapshot = JSON.stringify({ version: 1, routes: [...routes.values()] }, null, 2);
    writing = writing.then(async () => {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
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
    list: () => [...routes.values()].sort((a, b) => a.gitspaceId.localeCompare(b.gitspaceId)).map(listed),
    async put(gitspaceId, registration) {
      if (!GITSPACE_ID_PATTERN.test(gitspaceId)) throw new InvalidGitspaceIdError(gitspaceId);
      const route = { gitspaceId, ...parseRouteRegistration(registration), updatedAt: now().toISOString() };
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
  return list.flatMap((entry: unknown, index): GatewayRoute[] => {
    const fields = (entry ?? {}) as Partial<Record<keyof GatewayRoute, unknown>>;
    const { gitspaceId, updatedAt } = fields;
    // A route of an older version (no secret, no run id): dropped, see above.
    if (fields.secret === undefined && fields.runId === undefined) return [];
    try {
      if (typeof gitspaceId !== 'string' || !GITSPACE_ID_PATTERN.test(gitspaceId)) {
        throw new InvalidGitspaceIdError(String(gitspaceId));
      }
      return [
        { gitspaceId, ...parseRouteRegistration(fields), updatedAt: String(updatedAt ?? new Date(0).toISOString()) },
      ];
    } catch (error) {
      throw new CorruptRoutesFileError(file, `routes[${index}]: ${(error as Error).message}`);
    }
  });
}
