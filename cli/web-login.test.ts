import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loginCommand, type LoginOptions } from './commands/auth';
import { createContext } from './context';
import { EXIT_CODES, UsageError } from './errors';
import { clientName, WebLoginError } from './web-login';

/**
 * `gitspaces login --web` in-process against a stand-in API: the browser's part is played by the test through the
 * context's browser opener. What is sent to the API, what is saved, and what is not saved when the sign-in fails.
 */
describe('gitspaces login --web', () => {
  let api: http.Server;
  let apiUrl: string;
  let configDir: string;
  /** The bodies POST /auth/cli/token received. */
  let exchanges: Record<string, string>[];
  /** The challenge of the consent link the browser was given. */
  let challenge: string | undefined;

  beforeAll(async () => {
    api = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/auth/cli/token') return void res.writeHead(404).end();
        const body = JSON.parse(text) as Record<string, string>;
        exchanges.push(body);
        const verified = createHash('sha256').update(body.code_verifier!).digest('base64url') === challenge;
        res
          .writeHead(verified ? 200 : 400, { 'content-type': 'application/json' })
          .end(
            JSON.stringify(
              verified
                ? { token: 'gsp_from_the_browser', user: { id: 'usr-1', name: 'ada', role: 'member' } }
                : { error: { code: 'invalid_grant', message: 'wrong verifier' } },
            ),
          );
      });
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
  });
  beforeEach(async () => {
    configDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-web-login-'));
    exchanges = [];
    challenge = undefined;
  });
  afterEach(async () => {
    await rm(configDir, { recursive: true, force: true });
  });

  /** The CLI in-process: `browser` plays the browser given the consent link; `interrupt()` is Ctrl-C. */
  function cli(browser?: (consent: URL) => Promise<void>) {
    let stdout = '';
    let stderr = '';
    const interrupts = new Set<() => void>();
    const browserErrors: unknown[] = [];
    const context = createContext(
      {
        stdin: process.stdin,
        stdout: { write: (text: string) => (stdout += text) },
        stderr: { write: (text: string) => (stderr += text) },
        stdinIsTerminal: false,
        stderrIsTerminal: false,
        onInterrupt(listener) {
          interrupts.add(listener);
          return () => interrupts.delete(listener);
        },
      },
      {
        configDir,
        override: {},
        ...(browser
          ? {
              browserOpener: (url: string) => {
                const consent = new URL(url);
                challenge = consent.searchParams.get('code_challenge') ?? undefined;
                browser(consent).catch((error: unknown) => browserErrors.push(error));
              },
            }
          : {}),
      },
    );
    const login = (options: LoginOptions = {}) => loginCommand(context, { url: apiUrl, web: true, ...options });
    return {
      login,
      stdout: () => stdout,
      stderr: () => stderr,
      browserErrors,
      interrupt: () => interrupts.forEach((listener) => listener()),
    };
  }

  /** The browser coming back to the command line's listener, as the API's redirect sends it. */
  const callback = async (consent: URL, params: Record<string, string>) => {
    const target = new URL(consent.searchParams.get('redirect_uri')!);
    target.search = new URLSearchParams(params).toString();
    return fetch(target);
  };
  const credentialsFile = () => path.join(configDir, 'credentials.json');
  const saved = () =>
    stat(credentialsFile()).then(
      () => true,
      () => false,
    );

  it('opens the consent link, refuses a forged callback, exchanges the code with its verifier and saves the token 0600', async () => {
    const seen: Record<string, string | number>[] = [];
    const run = cli(async (consent) => {
      const forged = await callback(consent, { code: 'forged', state: 'not-the-state-of-this-sign-in' });
      seen.push({ forged: forged.status });
      const real = await callback(consent, { code: 'the-code', state: consent.searchParams.get('state')! });
      seen.push({ real: real.status });
    });
    await run.login();
    expect(run.browserErrors).toEqual([]);
    expect(seen).toEqual([{ forged: 400 }, { real: 200 }]);
    expect(exchanges).toEqual([
      {
        code: 'the-code',
        code_verifier: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        redirect_uri: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/callback$/),
      },
    ]);
    expect(((await stat(credentialsFile())).mode & 0o777).toString(8)).toBe('600');
    expect(JSON.parse(await readFile(credentialsFile(), 'utf8'))).toEqual({
      url: apiUrl,
      token: 'gsp_from_the_browser',
    });
    expect(run.stdout()).toContain(`logged in to ${apiUrl} as ada (member)`);
    expect(run.stderr()).toContain('refused a request to the sign-in listener');
  });

  it('asks for S256, a state and this machine’s name, and sends the code only to its own loopback listener', async () => {
    let consent: URL | undefined;
    const run = cli(async (link) => {
      consent = link;
      await callback(link, { code: 'the-code', state: link.searchParams.get('state')! });
    });
    await run.login();
    expect(`${consent!.origin}${consent!.pathname}`).toBe(`${apiUrl}/auth/cli`);
    expect(Object.fromEntries(consent!.searchParams)).toEqual({
      redirect_uri: exchanges[0]!.redirect_uri,
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge_method: 'S256',
      state: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      client_name: clientName(os.hostname()),
    });
    expect(clientName('Ada’s MacBook Pro.local')).toBe('Ada-s-MacBook-Pro.local');
    expect(clientName('---')).toBe('unknown-host');
  });

  it('saves nothing when only forged callbacks come and Ctrl-C ends the wait (exit 130)', async () => {
    let forgedStatus = 0;
    const run = cli(async (consent) => {
      forgedStatus = (await callback(consent, { code: 'forged', state: 'guessed-state-0123456789' })).status;
      run.interrupt();
    });
    await expect(run.login()).rejects.toMatchObject({ exitCode: EXIT_CODES.interrupted });
    expect(forgedStatus).toBe(400);
    expect(exchanges).toEqual([]);
    expect(await saved()).toBe(false);
  });

  it('saves nothing when the user cancels in the browser, or nobody comes back in time', async () => {
    const cancelled = cli((consent) =>
      callback(consent, { error: 'access_denied', state: consent.searchParams.get('state')! }).then(() => undefined),
    );
    await expect(cancelled.login()).rejects.toThrow(WebLoginError);
    const nobody = cli(() => Promise.resolve());
    await expect(nobody.login({ webTimeoutMs: 200 })).rejects.toThrow(/no sign-in came back from the browser/);
    expect(exchanges).toEqual([]);
    expect(await saved()).toBe(false);
  });

  it('with --no-browser only prints the link; --web and a token are exclusive', async () => {
    let opened = false;
    const run = cli(async () => {
      opened = true;
    });
    const login = run.login({ browser: false });
    for (let i = 0; i < 50 && !run.stderr().includes('/auth/cli?'); i++) await new Promise((r) => setTimeout(r, 20));
    const link = new URL(/(http:\/\/\S+\/auth\/cli\?\S+)/.exec(run.stderr())![1]!);
    challenge = link.searchParams.get('code_challenge')!;
    await callback(link, { code: 'the-code', state: link.searchParams.get('state')! });
    await login;
    expect(opened).toBe(false);
    expect(await saved()).toBe(true);

    await expect(run.login({ token: 'gsp_x' })).rejects.toThrow(UsageError);
    await expect(run.login({ tokenStdin: true })).rejects.toThrow(UsageError);
    await expect(run.login({ web: false, browser: false, token: 'gsp_x' })).rejects.toThrow(UsageError);
  });
});
