/** A gitspace named on the command line by its id or by its name. */
import { gitspacePath, type ApiClient } from './api-client';
import { ApiError, UsageError } from './errors';
import type { Gitspace } from './types';

/**
 * The gitspace `nameOrId` names: the one with that id, else the one with that name. Names are unique per owner among
 * gitspaces that are not deleted, so a name matches a deleted one only when no live one has it; an administrator, who
 * sees everyone's, gets their own first.
 */
export async function resolveGitspace(client: ApiClient, nameOrId: string): Promise<Gitspace> {
  try {
    return await client.get<Gitspace>(gitspacePath(nameOrId));
  } catch (error) {
    // Not an id (a name with a space is a 400 or 404 as a path): look for the name.
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 400)) throw error;
  }
  const gitspaces = await client.listGitspaces();
  const matches = namedGitspaces(nameOrId, gitspaces);
  if (matches.length > 1) {
    const me = await client.whoami();
    const mine = me ? matches.filter((gitspace) => gitspace.owner === me.id) : [];
    if (mine.length) return pickOne(nameOrId, mine);
  }
  return pickOne(nameOrId, matches);
}

/** The gitspaces that `name` could mean: the live ones with that name, else the deleted ones. */
export function namedGitspaces(name: string, gitspaces: readonly Gitspace[]): Gitspace[] {
  const named = gitspaces.filter((gitspace) => gitspace.name === name);
  const live = named.filter((gitspace) => gitspace.state !== 'deleted');
  return live.length ? live : named;
}

/** The one gitspace of `matches`; an unknown name is a 404 as the API would say, two of them a usage error. */
export function pickOne(name: string, matches: readonly Gitspace[]): Gitspace {
  const [first, ...others] = matches;
  if (!first) {
    throw new ApiError(
      404,
      'not_found',
      `no gitspace has the name or id '${name}'; \`gitspaces list --all\` shows yours`,
    );
  }
  if (others.length === 0) return first;
  const listed = matches.map((g) => `${g.id} (owner ${g.owner}, ${g.state})`).join(', ');
  throw new UsageError(`${matches.length} gitspaces are named '${name}': ${listed}; name one by its id`);
}
