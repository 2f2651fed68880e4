/** The values of the command line, checked and put in the form the API wants. Pure: unit-tested in the fast set. */
import { GITSPACE_STATES, type GitspaceState } from '../contracts/lifecycle';
import { UsageError } from './errors';

/** Where `login` points when given no --url: the API of `npm start` on this machine. */
export const DEFAULT_API_URL = 'http://127.0.0.1:3000';

/**
 * The API's base URL from what a user types: `http://host:3000`, `http://host:3000/` or the `…/api/v1` that
 * `npm start` prints all mean `http://host:3000`.
 */
export function normalizeApiUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw new UsageError(`'${input}' is not a URL; give the API's address, such as ${DEFAULT_API_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`the API URL must be http:// or https://, not ${url.protocol}//`);
  }
  if (url.username || url.password) throw new UsageError('the API URL must not carry a user name or password');
  if (url.search || url.hash) throw new UsageError('the API URL must not carry a query or fragment');
  const pathname = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return `${url.origin}${pathname}`;
}

/** `running,stopped` → the states, each checked; the API's own filter takes the same list. */
export function parseStates(list: string): GitspaceState[] {
  const states = list
    .split(',')
    .map((state) => state.trim())
    .filter((state) => state !== '');
  const unknown = states.filter((state) => !(GITSPACE_STATES as readonly string[]).includes(state));
  if (states.length === 0 || unknown.length > 0) {
    throw new UsageError(
      `${unknown.length ? `unknown state ${unknown.map((s) => `'${s}'`).join(', ')}; ` : ''}give one or more of ${GITSPACE_STATES.join(', ')}, separated by commas`,
    );
  }
  return [...new Set(states)] as GitspaceState[];
}

/** A positive number of seconds (fractions allowed), such as a --timeout. */
export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`'${value}' is not a number of seconds greater than 0`);
  }
  return seconds;
}

/**
 * The gitspace name `create` uses when given none: the repository's last path part without `.git`
 * (`https://git.example.com/org/my-api.git` → `my-api`), in the characters a gitspace name allows.
 */
export function gitspaceNameFromRepository(repositoryUrl: string): string {
  let last: string;
  try {
    last = decodeURIComponent(new URL(repositoryUrl).pathname.split('/').filter(Boolean).pop() ?? '');
  } catch {
    last = repositoryUrl.split(/[/:]/).filter(Boolean).pop() ?? '';
  }
  const name = last
    .replace(/\.git$/, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  if (!name) throw new UsageError(`cannot make a gitspace name from '${repositoryUrl}'; give one with --name`);
  return name;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * An auto-stop duration: `90s`, `30m`, `8h`, `1h30m`, `2d` or plain seconds; `never` is 0 and `default` is null (the
 * infrastructure's value), as the API takes them.
 */
export function parseDuration(value: string): number | null {
  const text = value.trim().toLowerCase();
  if (text === 'never') return 0;
  if (text === 'default') return null;
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text) {
    throw new UsageError(`'${value}' is not a duration: give one such as 90s, 30m, 8h or 1h30m, or never or default`);
  }
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * DURATION_UNITS[unit!]!, 0);
}

/** A number of seconds as `parseDuration` reads it back: `1h30m`, `45s`. */
export function formatDuration(seconds: number): string {
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}s`);
  return parts.join('');
}
