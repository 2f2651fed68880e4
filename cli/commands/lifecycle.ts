/** `create`, `start`, `stop`, `retry` and `delete`: ask for the operation, then follow it to its end unless --no-wait. */
import type { IdeKind } from '../../contracts/provider';
import { gitspaceNameFromRepository } from '../args';
import { autoStopBody } from './autostop';
import { gitspacePath, type ApiClient } from '../api-client';
import { confirm } from '../confirm';
import type { CliContext } from '../context';
import { UsageError } from '../errors';
import { resolveGitspace } from '../resolve';
import type { Gitspace, Infrastructure, Machine, Operation, Page } from '../types';
import { lastEventSeq, waitForOperation } from '../wait';

export interface CreateOptions {
  name?: string;
  branch?: string;
  infrastructure?: string;
  machine?: string;
  ide?: IdeKind;
  tokenRef?: string;
  /** Seconds (0: never; null: the infrastructure's), from --idle-timeout and --max-lifetime. */
  idleTimeout?: number | null;
  maxLifetime?: number | null;
  start: boolean;
  wait: boolean;
  json?: boolean;
}

export async function createCommand(context: CliContext, repositoryUrl: string, options: CreateOptions): Promise<void> {
  const client = await context.connect();
  const infrastructureId = options.infrastructure ?? (await onlyInfrastructure(client));
  const machineId = await machineIdOf(client, infrastructureId, options.machine);
  const body = {
    name: options.name ?? gitspaceNameFromRepository(repositoryUrl),
    repository: {
      url: repositoryUrl,
      ...(options.branch !== undefined ? { branch: options.branch } : {}),
      ...(options.tokenRef !== undefined ? { tokenRef: options.tokenRef } : {}),
    },
    infrastructureId,
    machineId,
    ...(options.ide ? { ide: options.ide } : {}),
    ...autoStopBody(options.idleTimeout, options.maxLifetime),
    start: options.start,
  };
  const created = await client.post<{ gitspace: Gitspace; operation?: Operation }>('/gitspaces', body);
  if (!created.operation || !options.wait)
    return report(context, options.json, created.gitspace, created.operation, false);
  const gitspace = await waitForOperation(context, client, { gitspace: created.gitspace, action: 'start', after: 0 });
  report(context, options.json, gitspace, created.operation, true);
}

/** With no --infrastructure: the one there is, or a usage error naming them. */
async function onlyInfrastructure(client: ApiClient): Promise<string> {
  const { items } = await client.get<Page<Infrastructure>>('/infrastructures');
  if (items.length === 1) return items[0]!.id;
  if (items.length === 0) throw new UsageError('there is no infrastructure to create a gitspace on; ask an admin');
  throw new UsageError(
    `choose an infrastructure with --infrastructure: ${items.map((i) => `${i.id} (${i.provider})`).join(', ')}`,
  );
}

/** --machine by id or by name; with none, the infrastructure's only machine, or a usage error naming them. */
async function machineIdOf(client: ApiClient, infrastructureId: string, wanted: string | undefined): Promise<string> {
  const { items } = await client.get<Page<Machine>>(
    `/infrastructures/${encodeURIComponent(infrastructureId)}/machines`,
  );
  if (wanted !== undefined) {
    // An unknown one goes to the API as given, which says what is wrong with it (a field error on machineId).
    return (items.find((m) => m.id === wanted) ?? items.find((m) => m.name === wanted))?.id ?? wanted;
  }
  if (items.length === 1) return items[0]!.id;
  const listed = items.map((m) => `${m.name} (${m.machineType}, ${m.diskSizeGb} GB)`).join(', ');
  throw new UsageError(
    items.length === 0
      ? `infrastructure '${infrastructureId}' has no machines; ask an admin to add one`
      : `choose a machine of infrastructure '${infrastructureId}' with --machine: ${listed}`,
  );
}

export interface ActionOptions {
  wait: boolean;
  json?: boolean;
}

/** `start`, `stop` and `retry`. */
export async function actionCommand(
  context: CliContext,
  action: 'start' | 'stop' | 'retry',
  nameOrId: string,
  options: ActionOptions,
): Promise<void> {
  const client = await context.connect();
  const gitspace = await resolveGitspace(client, nameOrId);
  const after = options.wait ? await lastEventSeq(client, gitspace.id) : 0;
  const { operation } = await client.post<{ operation: Operation }>(gitspacePath(gitspace.id, '/actions'), { action });
  await finish(context, client, options, gitspace, operation, after);
}

export interface DeleteOptions extends ActionOptions {
  yes?: boolean;
}

export async function deleteCommand(context: CliContext, nameOrId: string, options: DeleteOptions): Promise<void> {
  const client = await context.connect();
  const gitspace = await resolveGitspace(client, nameOrId);
  if (!options.yes) await confirmDelete(context, gitspace);
  const after = options.wait ? await lastEventSeq(client, gitspace.id) : 0;
  const { operation } = await client.delete<{ operation: Operation }>(gitspacePath(gitspace.id));
  await finish(context, client, options, gitspace, operation, after);
}

/** A person at a terminal is asked; a script must say --yes. */
async function confirmDelete(context: CliContext, gitspace: Gitspace): Promise<void> {
  const yes = await confirm(
    context,
    `Delete gitspace '${gitspace.name}' (${gitspace.id})? Its machine and disks are removed, its events kept.`,
    `not deleting gitspace '${gitspace.name}' without confirmation: add --yes`,
  );
  if (!yes) throw new UsageError(`gitspace '${gitspace.name}' was not deleted`);
}

async function finish(
  context: CliContext,
  client: ApiClient,
  options: ActionOptions,
  gitspace: Gitspace,
  operation: Operation,
  after: number,
): Promise<void> {
  if (!options.wait) {
    const requested = await client.get<Gitspace>(gitspacePath(gitspace.id));
    return report(context, options.json, requested, operation, false);
  }
  const ended = await waitForOperation(context, client, { gitspace, action: operation.action, after });
  report(context, options.json, ended, operation, true);
}

/**
 * The result: with --json `{ gitspace, operation }` (the operation as it now is), else one line: where the gitspace
 * ended, or, without waiting, what was asked and under which workflow.
 */
function report(
  context: CliContext,
  json: boolean | undefined,
  gitspace: Gitspace,
  requested: Operation | undefined,
  waited: boolean,
): void {
  const operation = gitspace.operation ?? requested;
  if (json) return context.printJson({ gitspace, ...(operation ? { operation } : {}) });
  if (operation && !waited) {
    return context.print(
      `${operation.action} of gitspace '${gitspace.name}' requested: it is ${gitspace.state} (workflow ${operation.workflowId}, run ${operation.runId})`,
    );
  }
  context.print(
    `gitspace '${gitspace.name}' is ${gitspace.state}${gitspace.url ? `: ${gitspace.url}` : ''} (${gitspace.id})`,
  );
}
