/** The words the pages use for the API's values. */
import { STEPS, type Actor } from '../../../contracts/lifecycle';
import type { IdeKind } from '../../../contracts/provider';
import type { Gitspace } from '../data/types';

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

const AUTO_STOP_REASONS = { idle: 'idle', 'max-lifetime': 'maximum lifetime' } as const;

/** Kinds of events besides state changes, as the event list names them. */
export const EVENT_TYPE_LABELS: Record<string, string> = {
  created: 'Created',
  step: 'Step',
  reconcile: 'Reconciliation',
  'auto-stop-warning': 'Auto-stop warning',
  'auto-stop-unobserved': 'Auto-stop: use unknown',
  'auto-stop-policy': 'Auto-stop changed',
};

/** "after 30 min idle (its own), after 8 h running (infrastructure's)", or that it never stops by itself. */
export function autoStopLabel(autoStop: NonNullable<Gitspace['autoStop']>): string {
  const source = { gitspace: 'its own', infrastructure: "the infrastructure's", none: '' } as const;
  const rule = (words: string, value: { seconds: number | null; source: keyof typeof source }) =>
    value.seconds === null
      ? undefined
      : `${words.replace('%', durationLabel(value.seconds))} (${source[value.source]})`;
  const rules = [rule('after % idle', autoStop.idleTimeout), rule('after % running', autoStop.maxLifetime)];
  const given = rules.filter((text): text is string => text !== undefined);
  return given.length > 0 ? given.join(', ') : 'never stops by itself';
}

/** 5400 → "1 h 30 min". */
function durationLabel(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const parts = [hours && `${hours} h`, minutes && `${minutes} min`, rest && `${rest} s`].filter(Boolean);
  return parts.join(' ') || '0 s';
}

export function actorLabel(actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return actor.name;
    case 'reconciler':
      return 'reconciliation';
    case 'auto-stop':
      return actor.reason ? `auto-stop (${AUTO_STOP_REASONS[actor.reason]})` : 'auto-stop';
    case 'unknown':
      return 'unknown';
  }
}
