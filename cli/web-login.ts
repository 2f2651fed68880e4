/**
 * `gitspaces login --web`: signing the command line in through the browser (RFC 8252, a loopback redirect with PKCE
 * S256). The browser signs in to the API as it does for the dashboard and consents; the API sends it back to this
 * command line's listener (cli/loopback.ts) with a one-time code, which only this command line, holding the PKCE
 * verifier, can exchange for an API token. The API's side: api/auth/cli-login.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { requestApi } from './api-client';
import { openInBrowser } from './browser';
import type { CliContext } from './context';
import { CliError, EXIT_CODES, InterruptedError } from './errors';
import { listenForCallback } from './loopback';
import type { User } from './types';

/** How long the command line waits for the browser by default. */
export const WEB_LOGIN_TIMEOUT_MS = 5 * 60_000;

/** Thrown when the browser sign-in did not give a code: the user cancelled it, or it took too long. */
export class WebLoginError extends CliError {
  readonly exitCode = EXIT_CODES.api;
  readonly code = 'web_login';
}

export interface WebLoginOptions {
  /** Open the browser (else only print the link: `--no-browser`). */
  browser: boolean;
  timeoutMs?: number;
}

/** Signs in through the browser at the API `url`: the new API token and its user. */
export async function signInThroughBrowser(
  context: CliContext,
  url: string,
  options: WebLoginOptions,
): Promise<{ token: string; user: User }> {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(32).toString('base64url');
  const listener = await listenForCallback(state, (why) =>
    context.note(`refused a request to the sign-in listener: ${why}`),
  );
  try {
    const consent = new URL(`${url}/auth/cli`);
    consent.search = new URLSearchParams({
      redirect_uri: listener.redirectUri,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      state,
      client_name: clientName(os.hostname()),
    }).toString();
    context.note(`To sign in, open this link in a browser:\n  ${consent.href}`);
    if (options.browser && openInBrowser(context, consent.href)) context.note('(opened in your browser)');
    const answer = await untilAnswered(context, listener.answer, options.timeoutMs ?? WEB_LOGIN_TIMEOUT_MS);
    if ('error' in answer) throw new WebLoginError(`the sign-in was refused in the browser (${answer.error})`);
    return await exchange(url, { code: answer.code, code_verifier: verifier, redirect_uri: listener.redirectUri });
  } finally {
    await listener.close();
  }
}

/** The browser's answer, unless Ctrl-C (InterruptedError, exit 130) or the timeout come first. */
async function untilAnswered<T>(context: CliContext, answer: Promise<T>, timeoutMs: number): Promise<T> {
  const { signal, dispose } = context.interruptible();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      answer,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new WebLoginError(`no sign-in came back from the browser in ${Math.round(timeoutMs / 1000)} s`)),
          timeoutMs,
        );
        signal.addEventListener('abort', () => reject(new InterruptedError('login cancelled')), { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    dispose();
  }
}

/** POST /auth/cli/token: the code and the verifier of its challenge, for an API token. */
async function exchange(
  url: string,
  body: { code: string; code_verifier: string; redirect_uri: string },
): Promise<{ token: string; user: User }> {
  const response = await requestApi(url, '/auth/cli/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  return (await response.json()) as { token: string; user: User };
}

/** This machine's name as the API takes it (a host name's characters), to name the token by. */
export function clientName(hostname: string): string {
  const name = hostname
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return name || 'unknown-host';
}
