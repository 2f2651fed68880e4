/** How the CLI shows gitspaces, events and errors to a person. Pure: unit-tested in the fast set. */
import type { Actor } from '../contracts/lifecycle';
import { formatDuration } from './args';
import { CliError } from './errors';
import { stepWords } from './operation-events';
import type { Gitspace, GitspaceEvent } from './types';

/** `12s`, `1m05s`, `1h02m`: elapsed time for progress lines. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** `2026-12-02 09:15:03Z`: UTC to the second, the same on every machine. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

/** Short words for event types longer than the WHAT column. */
const EVENT_WORDS: Record<string, string> = {
  'auto-stop-warning': 'warning',
  'auto-stop-unobserved': 'unobserved',
  'auto-stop-policy': 'auto-stop',
};

export function actorLabel(actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return actor.name;
    case 'reconciler':
      return 'reconciler';
    case 'auto-stop':
      return 'auto-stop';
    case 'unknown':
      return 'unknown';
  }
}

/** Columns with two spaces between them, each as wide as its widest cell; the last one not padded. */
export function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  return [header, ...rows].map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** `gitspaces list`: one line per gitspace. */
export function formatGitspaceList(gitspaces: readonly Gitspace[]): string[] {
  if (gitspaces.length === 0) return ['no gitspaces'];
  return formatTable(
    ['NAME', 'STATE', 'IDE', 'REPOSITORY', 'ID'],
    gitspaces.map((g) => [g.name, g.state, g.ide, repositoryLabel(g.repository.url, g.repository.branch), g.id]),
  );
}

/** `gitspaces show`: every field a person acts on, one per line. */
export function formatGitspace(gitspace: Gitspace): string[] {
  const { operation, lastError } = gitspace;
  const lines: [string, string | undefined][] = [
    ['name', gitspace.name],
    ['id', gitspace.id],
    ['state', gitspace.state],
    ['url', gitspace.url],
    ['repository', repositoryLabel(gitspace.repository.url, gitspace.repository.branch)],
    [
      'repository token',
      gitspace.repository.tokenRef
        ? `${gitspace.repository.tokenRef} (in the runner's secret store)`
        : gitspace.repository.hasToken
          ? 'sealed to the infrastructure'
          : undefined,
    ],
    ['ide', gitspace.ide],
    ['infrastructure', gitspace.infrastructureId],
    ['machine', gitspace.machineId],
    ['owner', gitspace.owner],
    ['auto-stop', autoStopLabel(gitspace.autoStop)],
    [
      'operation',
      operation
        ? `${operation.action} ${operation.status}${operation.step ? ` at '${stepWords(operation.step)}'` : ''} (workflow ${operation.workflowId}, run ${operation.runId})`
        : undefined,
    ],
    [
      'last error',
      lastError
        ? `${lastError.action} failed at '${stepWords(lastError.step)}': ${lastError.message}${lastError.cause ? ` [${lastError.cause}]` : ''}`
        : undefined,
    ],
    ['created', formatTime(gitspace.createdAt)],
    ['updated', formatTime(gitspace.updatedAt)],
  ];
  const shown = lines.filter((line): line is [string, string] => line[1] !== undefined);
  const width = Math.max(...shown.map(([label]) => label.length)) + 1;
  return shown.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`);
}

/** `idle 30m (gitspace), max lifetime 8h (infrastructure)`: the effective policy, as `show` prints it. */
export function autoStopLabel(autoStop: Gitspace['autoStop']): string | undefined {
  if (!autoStop) return undefined;
  const one = (label: string, value: { seconds: number | null; source: string }) =>
    `${label} ${value.seconds === null ? 'never' : formatDuration(value.seconds)}${value.source === 'none' ? '' : ` (${value.source})`}`;
  return `${one('idle', autoStop.idleTimeout)}, ${one('max lifetime', autoStop.maxLifetime)}`;
}

function repositoryLabel(url: string, branch: string | undefined): string {
  return branch ? `${url} (${branch})` : url;
}

/**
 * `gitspaces logs`: one event as `TIME  ACTOR  WHAT  MESSAGE`, WHAT being the step, the state reached, or the kind of
 * event; a failure adds a line with its cause.
 */
export function formatEvent(event: GitspaceEvent): string[] {
  const what =
    event.type === 'step'
      ? 'step'
      : event.type === 'state' && event.state
        ? event.state
        : (EVENT_WORDS[event.type] ?? event.type.slice(0, 9));
  const line = `${formatTime(event.createdAt)}  ${actorLabel(event.actor).padEnd(12)}  ${what.padEnd(9)}  ${event.message}`;
  const cause = event.state === 'error' && typeof event.data.cause === 'string' ? event.data.cause : undefined;
  return cause ? [line, `${' '.repeat(22)}cause: ${cause}`] : [line];
}

/** An error as the user reads it: `error: <message>`, then its details (`  <path>: <message>` for each field). */
export function formatError(error: unknown): string[] {
  if (error instanceof CliError) {
    return [`error: ${error.message}`, ...error.details().map((detail) => `  ${detail}`)];
  }
  return [`error: ${error instanceof Error ? error.message : String(error)}`];
}

/** An error as `--json` prints it: `{ "error": { "code", "message", … } }`. */
export function errorJson(error: unknown): { error: Record<string, unknown> } {
  if (error instanceof CliError) return { error: error.toJSON() };
  return { error: { code: 'internal', message: error instanceof Error ? error.message : String(error) } };
}
