/** `login` (with a token, or through the browser) and `logout`: the API URL and token kept in the credentials file. */
import { text } from 'node:stream/consumers';
import { DEFAULT_API_URL, normalizeApiUrl } from '../args';
import { createApiClient } from '../api-client';
import type { CliContext } from '../context';
import { InterruptedError, UsageError } from '../errors';
import type { User } from '../types';
import { signInThroughBrowser } from '../web-login';

export interface LoginOptions {
  url?: string;
  token?: string;
  tokenStdin?: boolean;
  /** Sign in through the browser (cli/web-login.ts) instead of with a token. */
  web?: boolean;
  /** With --web: open the browser (`--no-browser` only prints the link). */
  browser?: boolean;
  /** With --web: how long to wait for the browser (5 minutes when absent). */
  webTimeoutMs?: number;
  json?: boolean;
}

/**
 * Checks the token against the API (GET /users answers only a valid one) before storing anything, so a typo never
 * replaces working credentials; with --web, the token the browser sign-in gave.
 */
export async function loginCommand(context: CliContext, options: LoginOptions): Promise<void> {
  if (options.token !== undefined && options.tokenStdin)
    throw new UsageError('give --token or --token-stdin, not both');
  if (options.web && (options.token !== undefined || options.tokenStdin)) {
    throw new UsageError('give --web or a token (--token, --token-stdin), not both');
  }
  if (options.browser === false && !options.web) throw new UsageError('--no-browser goes with --web');
  const url = normalizeApiUrl(
    options.url ?? context.settings.override.url ?? (await storedUrl(context)) ?? DEFAULT_API_URL,
  );
  let token: string;
  let user: User | undefined;
  if (options.web) {
    ({ token, user } = await signInThroughBrowser(context, url, {
      browser: options.browser !== false,
      ...(options.webTimeoutMs !== undefined ? { timeoutMs: options.webTimeoutMs } : {}),
    }));
  } else {
    token = (options.token ?? (await readToken(context, options.tokenStdin === true))).trim();
    if (!token) throw new UsageError('the token is empty');
    user = await createApiClient({ url, token }).whoami();
  }
  await context.credentials.save({ url, token });
  if (options.json) return context.printJson({ url, user: user ?? null, credentials: context.credentials.path });
  context.print(
    `logged in to ${url}${user ? ` as ${user.name} (${user.role})` : ''}; credentials in ${context.credentials.path}`,
  );
}

/** The URL of the last login, to log in there again; nothing when the file is missing or unsafe. */
async function storedUrl(context: CliContext): Promise<string | undefined> {
  return (await context.credentials.load().catch(() => undefined))?.url;
}

/** From stdin (piped, or --token-stdin), or asked for at the terminal without echoing it. */
async function readToken(context: CliContext, fromStdin: boolean): Promise<string> {
  const { io } = context;
  if (fromStdin || !io.stdinIsTerminal) {
    if (io.stdinIsTerminal) io.stderr.write('Paste the API token, then press Ctrl-D: ');
    return text(io.stdin);
  }
  return readHidden(context, 'API token (input hidden): ');
}

function readHidden(context: CliContext, prompt: string): Promise<string> {
  const { stdin, stderr } = context.io;
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const character of chunk) {
        if (character === '\r' || character === '\n' || character === '\u0004') return done();
        if (character === '\u0003') return done(new InterruptedError('login cancelled'));
        if (character === '\u007f' || character === '\b') typed = typed.slice(0, -1);
        else typed += character;
      }
    };
    stdin.on('data', onData);
  });
}

export async function logoutCommand(context: CliContext, options: { json?: boolean }): Promise<void> {
  const removed = await context.credentials.remove();
  const { override } = context.settings;
  if (options.json) return context.printJson({ removed, credentials: context.credentials.path });
  context.print(removed ? `logged out: removed ${context.credentials.path}` : 'not logged in; nothing to remove');
  // The token itself stays valid: an admin revokes it in the API.
  if (override.token !== undefined) context.note('GITSPACES_TOKEN is still set in this environment and still used');
}
