/** `autostop` and the auto-stop flags of `create`: a gitspace's idle timeout and maximum lifetime. */
import { gitspacePath } from '../api-client';
import type { CliContext } from '../context';
import { autoStopLabel } from '../format';
import { resolveGitspace } from '../resolve';
import type { Gitspace } from '../types';

/** The body's `autoStop` from the flags given (none when neither was). */
export function autoStopBody(
  idleTimeout: number | null | undefined,
  maxLifetime: number | null | undefined,
): { autoStop?: { idleTimeoutSeconds?: number | null; maxLifetimeSeconds?: number | null } } {
  if (idleTimeout === undefined && maxLifetime === undefined) return {};
  return {
    autoStop: {
      ...(idleTimeout !== undefined ? { idleTimeoutSeconds: idleTimeout } : {}),
      ...(maxLifetime !== undefined ? { maxLifetimeSeconds: maxLifetime } : {}),
    },
  };
}

/** Sets a gitspace's own idle timeout and/or maximum lifetime; with neither flag, shows them. */
export async function autostopCommand(
  context: CliContext,
  nameOrId: string,
  options: { idleTimeout?: number | null; maxLifetime?: number | null; json?: boolean },
): Promise<void> {
  const client = await context.connect();
  let gitspace = await resolveGitspace(client, nameOrId);
  const body = autoStopBody(options.idleTimeout, options.maxLifetime);
  if (body.autoStop) gitspace = await client.patch<Gitspace>(gitspacePath(gitspace.id), body);
  if (options.json) return context.printJson({ id: gitspace.id, name: gitspace.name, autoStop: gitspace.autoStop });
  context.print([`${gitspace.name}: ${autoStopLabel(gitspace.autoStop) ?? 'auto-stop not reported by this API'}`]);
}

/** How the duration flags are given, for their help. */
export const DURATION_HELP = '30m, 8h, 1h30m, never, or default (the infrastructure’s)';
