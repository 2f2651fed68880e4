import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { GATEWAY_COOKIE } from './gateway';
import { startAgent, startHarness, type Harness, type TestAgent } from '../test/support/gateway-harness';
import { CHROMIUM, CHROMIUM_ARGS, TEST_ARTIFACTS } from '../test/support/chromium';

const ID = 'gs-browser';

describe('a user in a real browser', () => {
  let h: Harness;
  let agent: TestAgent;
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    h = await startHarness();
    agent = await startAgent(ID, {
      'README.md': '# demo repository\n',
      'package.json': '{ "name": "demo" }\n',
      'src/hello-from-the-repo.ts': 'export const hello = 1;\n',
    });
    await h.route(ID, agent.url, { secret: agent.routeSecret });
    profile = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-chromium-'));
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      viewport: { width: 1100, height: 600 },
      args: CHROMIUM_ARGS,
    });
  });
  afterAll(async () => {
    await context?.close();
    await h.close();
    await agent.close();
    await rm(profile, { recursive: true, force: true });
  });

  it('opens the access URL, lands in the terminal without the token in the address bar, and lists the repository', async () => {
    const { token } = await h.issuer.issue({ userId: 'user-1', gitspaceId: ID, runId: 'run-1' });
    const accessUrl = `${h.publicUrl}/gitspaces/${ID}/?token=${token}`;
    const page = await context.newPage();
    await page.goto(accessUrl);

    expect(page.url()).toBe(`${h.publicUrl}/gitspaces/${ID}/`);
    // The cookie exists, but page scripts cannot read it.
    expect((await context.cookies()).map((c) => [c.name, c.httpOnly, c.sameSite, c.path])).toEqual([
      [GATEWAY_COOKIE, true, 'Lax', `/gitspaces/${ID}/`],
    ]);
    expect(await page.evaluate('document.cookie')).toBe('');

    await page.getByRole('status').filter({ hasText: 'connected' }).waitFor();
    await page.locator('.xterm').click();
    await page.keyboard.type('ls');
    await page.keyboard.press('Enter');
    const rows = page.locator('.xterm-rows');
    await rows.filter({ hasText: 'package.json' }).waitFor({ timeout: 15_000 });
    const screen = await rows.innerText();
    expect(screen).toContain('README.md');
    expect(screen).toMatch(/\bsrc\b/);

    await mkdir(TEST_ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(TEST_ARTIFACTS, 'gateway-terminal.png') });
    await page.close();
  });

  it('shows a browser that comes without a token a page that says to sign in, not JSON', async () => {
    await context.clearCookies();
    const page = await context.newPage();
    const response = await page.goto(`${h.publicUrl}/gitspaces/${ID}/`);
    expect(response?.status()).toBe(401);
    expect(await page.getByRole('heading').textContent()).toBe('Sign in to open this gitspace');
    expect(await page.textContent('body')).toContain(`You are not signed in to gitspace ${ID}.`);
    await page.screenshot({ path: path.join(TEST_ARTIFACTS, 'gateway-sign-in.png') });
    await page.close();
  });
});
