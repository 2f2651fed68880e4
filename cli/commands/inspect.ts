/** `list`, `show`, `open` and `logs`: reading gitspaces, opening one, and its events. */
import { openInBrowser } from '../browser';
import { GITSPACE_STATES, type GitspaceState } from '../../contracts/lifecycle';
import { gitspacePath } from '../api-client';
import type { CliContext } from '../context';
import { followEvents } from '../event-stream';
import { formatEvent, formatGitspace, formatGitspaceList } from '../format';
import { resolveGitspace } from '../resolve';
import type { AccessGrant, GitspaceEvent, Page } from '../types';

/** What `list` shows without --state or --all: every gitspace that is not deleted. */
const LIVE_STATES = GITSPACE_STATES.filter((state) => state !== 'deleted');

export async function listCommand(
  context: CliContext,
  options: { state?: GitspaceState[]; all?: boolean; json?: boolean },
): Promise<void> {
  const client = await context.connect();
  const states = options.state ?? (options.all ? undefined : LIVE_STATES);
  const gitspaces = await client.listGitspaces(states);
  if (options.json) return context.printJson({ items: gitspaces });
  context.print(formatGitspaceList(gitspaces));
}

export async function showCommand(context: CliContext, nameOrId: string, options: { json?: boolean }): Promise<void> {
  const gitspace = await resolveGitspace(await context.connect(), nameOrId);
  if (options.json) return context.printJson(gitspace);
  context.print(formatGitspace(gitspace));
}

/** A fresh access URL (it carries a short-lived token), printed, and opened in the browser when there is one. */
export async function openCommand(
  context: CliContext,
  nameOrId: string,
  options: { print?: boolean; json?: boolean },
): Promise<void> {
  const client = await context.connect();
  const gitspace = await resolveGitspace(client, nameOrId);
  const grant = await client.post<AccessGrant>(gitspacePath(gitspace.id, '/access'));
  if (options.json) context.printJson(grant);
  else context.print(grant.url);
  if (options.print || options.json || !openInBrowser(context, grant.url)) return;
  context.note(`opened gitspace '${gitspace.name}' in your browser (the link is valid until ${grant.expiresAt})`);
}

export interface LogsOptions {
  follow?: boolean;
  /** With --follow: stop after this many seconds. */
  timeout?: number;
  json?: boolean;
}

/**
 * The gitspace's events; with --follow the live stream too, until the gitspace is deleted, the timeout passes or
 * Ctrl-C. With --json one event per line (JSON Lines), so a script can read them as they come.
 */
export async function logsCommand(context: CliContext, nameOrId: string, options: LogsOptions): Promise<void> {
  const client = await context.connect();
  const gitspace = await resolveGitspace(client, nameOrId);
  const show = (event: GitspaceEvent) =>
    options.json ? context.io.stdout.write(`${JSON.stringify(event)}\n`) : context.print(formatEvent(event));
  if (!options.follow) {
    const { items } = await client.get<Page<GitspaceEvent>>(gitspacePath(gitspace.id, '/events'));
    items.forEach(show);
    return;
  }
  const interrupt = context.interruptible();
  const signal =
    options.timeout !== undefined
      ? AbortSignal.any([interrupt.signal, AbortSignal.timeout(options.timeout * 1000)])
      : interrupt.signal;
  try {
    await followEvents(client, gitspace.id, {
      after: 0,
      signal,
      onEvent(event) {
        show(event);
        return event.type === 'state' && event.state === 'deleted';
      },
      onReconnect: (reason) => context.note(`the event stream dropped (${reason}); resuming`),
    });
  } finally {
    interrupt.dispose();
  }
}
