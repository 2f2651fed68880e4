/** What a user can do with a gitspace, shared by the list and the detail page. */
import { useState } from 'react';
import type { GitspaceState } from '../../../contracts/lifecycle';
import { useAnnounce } from '../components/announcer';
import { messageOf } from '../components/ui';
import { gitspaces } from '../data/requests';
import type { Gitspace } from '../data/types';

export type GitspaceAction = 'open' | 'start' | 'stop' | 'retry' | 'delete';

/**
 * The actions each state allows (DESIGN.md: a stop or delete during a start cancels it; from `error`, start, stop,
 * retry and delete are allowed).
 */
const ALLOWED: Record<GitspaceState, readonly GitspaceAction[]> = {
  stopped: ['start', 'delete'],
  starting: ['stop', 'delete'],
  running: ['open', 'stop', 'delete'],
  stopping: ['delete'],
  deleting: [],
  deleted: [],
  error: ['retry', 'start', 'stop', 'delete'],
};

export const allows = (gitspace: Gitspace, action: GitspaceAction) => ALLOWED[gitspace.state].includes(action);

const DOING = { start: 'Starting', stop: 'Stopping', retry: 'Retrying' } as const;

/** The actions, each announcing what it did or why it could not; `busy` names the one under way. */
export function useGitspaceActions(onChanged?: () => void) {
  const announce = useAnnounce();
  const [busy, setBusy] = useState<GitspaceAction>();

  const run = async (action: GitspaceAction, work: () => Promise<void>) => {
    setBusy(action);
    try {
      await work();
      onChanged?.();
    } finally {
      setBusy(undefined);
    }
  };

  /**
   * Opens the gitspace in a new tab with one click: the tab is opened during the click (so no pop-up blocker stops
   * it) and sent to the gateway once the API has granted access.
   */
  const open = (gitspace: Gitspace) => {
    const tab = window.open('', '_blank');
    if (tab) {
      tab.opener = null;
      tab.document.title = `Opening ${gitspace.name}…`;
      tab.document.body.textContent = `Opening ${gitspace.name}…`;
    }
    void run('open', async () => {
      try {
        const grant = await gitspaces.access(gitspace.id);
        if (tab) tab.location.replace(grant.url);
        else if (!window.open(grant.url, '_blank', 'noopener')) {
          announce('Your browser blocked the new tab: allow pop-ups for this site, then Open again.', 'error');
        }
      } catch (error) {
        tab?.close();
        announce(`Could not open '${gitspace.name}': ${messageOf(error)}`, 'error');
      }
    });
  };

  const act = (gitspace: Gitspace, action: 'start' | 'stop' | 'retry') =>
    run(action, async () => {
      try {
        await gitspaces.act(gitspace.id, action);
        announce(`${DOING[action]} '${gitspace.name}'…`);
      } catch (error) {
        announce(`Could not ${action} '${gitspace.name}': ${messageOf(error)}`, 'error');
      }
    });

  /** Deletes after the page's confirmation; throws so the dialog can show why it failed. */
  const remove = (gitspace: Gitspace) =>
    run('delete', async () => {
      await gitspaces.remove(gitspace.id);
      announce(`Deleting '${gitspace.name}'…`);
    });

  return { busy, open, act, remove };
}
