/** The auto-stop policy of gitspaces and infrastructures (README: auto-stop): its checks and PATCH /gitspaces/:id. */
import type { z } from 'zod';
import { InputError } from '../../common/errors';
import { DEFAULT_AUTO_STOP_MIN_SECONDS } from '../auto-stop';
import { defineRoute, type RouteServices } from '../route-table';
import { Gitspace, UpdateGitspaceBody, type AutoStopSetting } from '../schemas';
import { actorOf } from './caller';
import { presentGitspaces } from './presenters';

/**
 * The policy columns for a body's `autoStop` (none when absent; a field left out is left out). A value below the
 * minimum (0 aside, which means never) is refused with its field path, before anything changes.
 */
export function autoStopColumns(
  setting: z.output<typeof AutoStopSetting> | undefined,
  services: Pick<RouteServices, 'autoStop'>,
  path: string,
): { autoStopIdleSeconds?: number | null; autoStopMaxLifetimeSeconds?: number | null } {
  if (!setting) return {};
  const minimum = services.autoStop?.minSeconds ?? DEFAULT_AUTO_STOP_MIN_SECONDS;
  const tooShort = (['idleTimeoutSeconds', 'maxLifetimeSeconds'] as const)
    .filter((field) => {
      const value = setting[field];
      return typeof value === 'number' && value > 0 && value < minimum;
    })
    .map((field) => ({ path: `${path}.${field}`, message: `must be 0 (never), null or at least ${minimum} seconds` }));
  if (tooShort.length > 0) throw new InputError(`an auto-stop shorter than ${minimum} seconds is refused`, tooShort);
  return {
    ...(setting.idleTimeoutSeconds !== undefined ? { autoStopIdleSeconds: setting.idleTimeoutSeconds } : {}),
    ...(setting.maxLifetimeSeconds !== undefined ? { autoStopMaxLifetimeSeconds: setting.maxLifetimeSeconds } : {}),
  };
}

export const autoStopRoutes = [
  defineRoute({
    method: 'patch',
    path: '/gitspaces/:id',
    summary: "Change a gitspace's auto-stop (null: its infrastructure's; 0: never)",
    access: 'user',
    gitspace: true,
    body: UpdateGitspaceBody,
    status: 200,
    response: Gitspace,
    handle: async ({ req, body, gitspace, services }) => {
      autoStopColumns(body.autoStop, services, 'autoStop');
      // An event, so the change has its actor and the change streams see it.
      await services.store.setGitspaceAutoStop(gitspace.id, body.autoStop, {
        message: `auto-stop changed: ${settingWords(body.autoStop)}`,
        actor: actorOf(req),
      });
      // A running gitspace's watcher takes the new deadlines at once.
      if (gitspace.state === 'running') await services.autoStop?.recheck(gitspace.id);
      return (await presentGitspaces(services.store, [await services.store.getGitspace(gitspace.id)]))[0];
    },
  }),
];

/** "idle timeout 1800 s, maximum lifetime: the infrastructure's": what a change set, for its event. */
function settingWords(setting: z.output<typeof AutoStopSetting>): string {
  const value = (seconds: number | null) =>
    seconds === null ? "the infrastructure's" : seconds === 0 ? 'never' : `${seconds} s`;
  return [
    setting.idleTimeoutSeconds !== undefined ? `idle timeout ${value(setting.idleTimeoutSeconds)}` : undefined,
    setting.maxLifetimeSeconds !== undefined ? `maximum lifetime ${value(setting.maxLifetimeSeconds)}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
}
