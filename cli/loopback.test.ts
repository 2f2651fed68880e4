import http from 'node:http';
import { listenForCallback, type LoopbackListener } from './loopback';

/** The listener `login --web` waits on (cli/loopback.ts): only GET /callback with this sign-in's state gets through. */
describe('the login --web loopback listener', () => {
  const state = 'state-of-this-sign-in-0123456789';
  let listener: LoopbackListener;
  const refused: string[] = [];
  beforeEach(async () => {
    refused.length = 0;
    listener = await listenForCallback(state, (why) => refused.push(why));
  });
  afterEach(async () => {
    await listener.close();
  });

  const settled = async (promise: Promise<unknown>) =>
    Promise.race([promise.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 50))]);
  const get = (path: string, init?: RequestInit) =>
    fetch(`${listener.redirectUri.replace('/callback', '')}${path}`, init);

  it('listens on 127.0.0.1 at a port of its own', () => {
    expect(listener.redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:[1-9][0-9]*\/callback$/);
  });

  it('refuses a forged callback (another state, none, or twice), another path or method, and goes on waiting', async () => {
    const attempts: [string, RequestInit | undefined, number][] = [
      ['/callback?code=forged&state=someone-elses-state-0123456789', undefined, 400],
      ['/callback?code=forged', undefined, 400],
      [`/callback?code=forged&state=${state}&state=${state}`, undefined, 400],
      [`/callback?code=forged&state=${state}x`, undefined, 400],
      [`/other?code=forged&state=${state}`, undefined, 404],
      [`/callback?code=forged&state=${state}`, { method: 'POST' }, 404],
      [`/callback?code=bad%20code&state=${state}`, undefined, 400],
    ];
    for (const [path, init, status] of attempts) {
      const response = await get(path, init);
      expect({ path, status: response.status }).toEqual({ path, status });
      expect(await response.text()).not.toContain('Signed in');
    }
    expect(refused).toHaveLength(attempts.length);
    expect(await settled(listener.answer)).toBe(false);
  });

  it('takes the callback with its state: the code, a static page, and nothing after it', async () => {
    const response = await get(`/callback?code=the-code_1&state=${state}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await response.text()).toContain('you can close this tab');
    await expect(listener.answer).resolves.toEqual({ code: 'the-code_1' });
    expect((await get(`/callback?code=another&state=${state}`)).status).toBe(410);
  });

  it('refuses a request naming another host (DNS rebinding), even with the right state, and goes on waiting', async () => {
    const { port } = new URL(listener.redirectUri);
    /** GET with a Host header of the test's choosing, as a page whose name now resolves to 127.0.0.1 sends. */
    const withHost = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = http.get(
          { host: '127.0.0.1', port, path: `/callback?code=the-code&state=${state}`, headers: { host } },
          (response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        request.on('error', reject);
      });
    for (const host of [`evil.example:${port}`, `localhost:${port}`, '127.0.0.1', `127.0.0.1:${port}.evil.example`]) {
      const answer = await withHost(host);
      expect({ host, status: answer.status }).toEqual({ host, status: 421 });
      expect(answer.body).not.toContain('Signed in');
    }
    expect(refused).toHaveLength(4);
    expect(await settled(listener.answer)).toBe(false);
    expect((await withHost(`127.0.0.1:${port}`)).status).toBe(200);
    await expect(listener.answer).resolves.toEqual({ code: 'the-code' });
  });

  it("passes on the user's refusal", async () => {
    expect((await get(`/callback?error=access_denied&state=${state}`)).status).toBe(200);
    await expect(listener.answer).resolves.toEqual({ error: 'access_denied' });
  });
});
