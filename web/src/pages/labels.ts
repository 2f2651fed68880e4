/** The words the pages use for the API's values. */
import { STEPS, type Actor } from '../../../contracts/lifecycle';
import type { IdeKind } from '../../../contracts/provider';

export const IDE_LABELS: Record<IdeKind, string> = {
  'vscode-web': 'VS Code in the browser',
  terminal: 'Terminal in the browser',
  ssh: 'SSH',
};

/** A step's words ("wait for the gitspace agent"), or its name when this dashboard does not know it. */
export function stepLabel(step: string): string {
  return Object.hasOwn(STEPS, step) ? STEPS[step as keyof typeof STEPS] : step;
}

/** `https://git.example.com/org/repo.git` → `git.example.com/org/repo`. */
export function repositoryLabel(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname}`.replace(/\.git$/, '').replace(/\/$/, '');
  } catch {
    return url;
  }
}

export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function actorLabel(actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return actor.name;
    case 'reconciler':
      return 'reconciliation';
    case 'auto-stop':
      return 'auto-stop';
    case 'unknown':
      return 'unknown';
  }
}
