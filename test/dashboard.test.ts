import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { freeLoopbackPorts } from '../common/net';
import { CHROMIUM, CHROMIUM_ARGS, TEST_ARTIFACTS } from './support/chromium';
import { startEntryProcess, type EntryProcess } from './support/entry-process';
import { startGitServer, type GitServer } from './support/git-server';

/**
 * The dashboard in a real browser, as a user: headless Chromium against the whole stack (Temporal dev server, control
 * plane serving the built dashboard, local runner, gateway), signing in through a real OpenID Connect provider on
 * loopback. Creates a gitspace from the form, watches it run live, opens it and types in its terminal, stops it, makes
 * a start fail and retries it, deletes one, and as an administrator creates an infrastructure and a machine. Saves a
 * screenshot of each page under test-artifacts/dashboard/ for a person to look at.
 */

const ROOT = path.join(__dirname, '..');
const DIST_WEB = path.join(ROOT, 'dist', 'web', 'index.html');
const SHOTS = path.join(TEST_ARTIFACTS, 'dashboard');
const CLIENT = { client_id: 'gitspaces', client_secret: randomBytes(24).toString('base64url') };
const ADMIN_GROUP = 'gitspaces-admins';
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** The newest modification time under `dir`. */
function newestChange(dir: string): number {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestChange(child) : statSync(child).mtimeMs);
  }
  return newest;
}

/** The test judges the dashboard the API serves: dist/web, built here when missing or older than web/src. */
async function ensureDashboardBuilt(): Promise<void> {
  const sources = Math.max(
    newestChange(path.join(ROOT, 'web', 'src')),
    statSync(path.join(ROOT, 'web', 'index.html')).mtimeMs,
  );
  if (existsSync(DIST_WEB) && statSync(DIST_WEB).mtimeMs >= sources) return;
  const build = spawn('npx', ['vite', 'build', 'web'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  build.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  build.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => build.once('exit', resolve));
  if (code !== 0) throw new Error(`npm run build:web failed (exit ${code}):\n${output}`);
}

describe('the dashboard in a real browser', () => {
  let provider: EntryProcess;
  let stackProcess: EntryProcess;
  let git: GitServer;
  let browser: Browser;
  let issuer: string;
  let apiUrl: string;
  let gatewayUrl: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    await ensureDashboardBuilt();
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    const { providerPort, apiPort } = await freeLoopbackPorts(['providerPort', 'apiPort']);
    issuer = `http://127.0.0.1:${providerPort}`;
    const callback = `http://127.0.0.1:${apiPort}/auth/callback`;
    [provider, stackProcess] = await Promise.all([
      startEntryProcess(
        'oidc-provider-main.ts',
        {
          OIDC_TEST_PORT: String(providerPort),
          OIDC_TEST_CLIENTS: JSON.stringify([{ ...CLIENT, redirect_uris: [callback] }]),
        },
        'OIDC_PROVIDER_READY',
      ),
      startEntryProcess(
        'dashboard-stack-main.ts',
        {
          GITSPACES_API_PORT: String(apiPort),
          GITSPACES_OIDC_ISSUER: issuer,
          GITSPACES_OIDC_CLIENT_ID: CLIENT.client_id,
          GITSPACES_OIDC_CLIENT_SECRET: CLIENT.client_secret,
          GITSPACES_OIDC_PROVIDER_NAME: 'Loopback ID',
          GITSPACES_OIDC_SIGNUP: 'open',
          GITSPACES_OIDC_ADMIN_GROUP: ADMIN_GROUP,
        },
        'DASHBOARD_STACK_READY',
        // It bundles the lifecycle workflows and starts a Temporal dev server first.
        120_000,
      ),
    ]);
    ({ apiUrl, gatewayUrl } = JSON.parse(stackProcess.line) as { apiUrl: string; gatewayUrl: string });
    const accounts = {
      ada: { email: 'ada@example.com', email_verified: true, preferred_username: 'ada', name: 'Ada' },
      grace: {
        email: 'grace@example.com',
        email_verified: true,
        preferred_username: 'grace',
        name: 'Grace',
        groups: [ADMIN_GROUP],
      },
    };
    for (const [id, claims] of Object.entries(accounts)) {
      const response = await fetch(`${issuer}/test-accounts/${id}`, { method: 'PUT', body: JSON.stringify(claims) });
      expect(response.status).toBe(204);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 240_000);

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await Promise.all([stackProcess?.stop(), provider?.stop(), git?.stop()]);
  }, 90_000);

  /**
   * Script errors and console errors on the dashboard's and the gateway's pages (a refused request's 4xx line aside;
   * the provider's development login page asks the internet for its styles, which loopback cannot answer).
   */
  const pageProblems: string[] = [];

  async function newPage(viewport = LAPTOP): Promise<Page> {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    const ours = () => new URL(page.url()).origin !== issuer;
    page.on('pageerror', (failure) => pageProblems.push(`page error on ${page.url()}: ${failure.message}`));
    page.on('console', (message) => {
      if (ours() && message.type() === 'error' && !message.text().includes('status of 4')) {
        pageProblems.push(`console error on ${page.url()}: ${message.text()}`);
      }
    });
    page.setDefaultTimeout(30_000);
    return page;
  }

  /**
   * Saves the page as `<name>.png`, and at phone width too when `phone`. A dialog's backdrop covers the viewport, so
   * pages with one open are saved as the viewport shows them, not the whole page.
   */
  async function screenshot(page: Page, name: string, { phone = false, dialog = false } = {}) {
    // From the top: a full-page shot of a scrolled page draws the sticky header halfway down.
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: !dialog });
    if (!phone) return;
    await page.setViewportSize(PHONE);
    await page.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), fullPage: !dialog });
    await page.setViewportSize(LAPTOP);
  }

  /** Through the provider's own login and consent pages as `login`, back to the dashboard. */
  async function signInAtProvider(page: Page, login: string) {
    await page.getByRole('link', { name: 'Sign in with Loopback ID' }).click();
    await page.waitForURL((url) => url.origin === issuer);
    await page.locator('input[name=login]').fill(login);
    await page.locator('input[name=password]').fill('any');
    await screenshot(page, 'provider-login');
    await page.locator('button[type=submit]').click();
    // The consent page, then back at the dashboard.
    await page.waitForURL((url) => url.origin === apiUrl || /consent|interaction/.test(url.pathname));
    if (new URL(page.url()).origin === issuer) await page.locator('button[type=submit]').click();
    await page.waitForURL((url) => url.origin === apiUrl);
  }

  /** Playwright's auto-waiting: until the locator shows (and holds `text`), or fail after `timeout`. */
  const shows = (locator: Locator, text?: string | RegExp, timeout?: number) =>
    (text === undefined ? locator : locator.filter({ hasText: text })).waitFor({ state: 'visible', timeout });
  const gone = (locator: Locator, timeout?: number) => locator.waitFor({ state: 'hidden', timeout });

  const listRow = (page: Page, name: string): Locator =>
    page.getByRole('list', { name: 'Gitspaces' }).getByRole('listitem').filter({ hasText: name });

  /** Every input, select and textarea on the page can be found by its accessible name. */
  async function expectLabelled(page: Page) {
    // A string, run in the page: this file is compiled without the DOM's types.
    const unnamed = await page.evaluate<string[]>(`
      [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((el) => !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') &&
          ![...(el.labels ?? [])].some((label) => label.textContent.trim()))
        .map((el) => el.outerHTML.slice(0, 160))
    `);
    expect(unnamed).toEqual([]);
  }

  let ada: Page;
  const name = `hello-${randomInt(1000, 9999)}`;

  test('sign in through the identity provider, landing on the gitspace list', async () => {
    ada = await newPage();
    await ada.goto(apiUrl);
    await shows(ada.getByRole('heading', { name: 'Sign in to Gitspaces' }));
    await screenshot(ada, 'sign-in', { phone: true });
    await signInAtProvider(ada, 'ada');
    await shows(ada.getByRole('heading', { name: 'My gitspaces' }));
    await screenshot(ada, 'list-empty', { phone: true });
  });

  test('create a gitspace from the form by keyboard and watch it reach Running live', async () => {
    await ada.getByRole('link', { name: 'New gitspace' }).first().click();
    await shows(ada.getByRole('heading', { name: 'New gitspace' }));
    await expectLabelled(ada);
    // The embedded infrastructure and its machine are chosen once they load.
    const machine = ada.getByLabel('Machine', { exact: true });
    await machine.locator('option[value=local-default]').waitFor({ state: 'attached' });
    expect(await ada.getByLabel('Infrastructure').inputValue()).toBe('local');
    expect(await machine.inputValue()).toBe('local-default');
    // The API's own field error, next to the field and tied to it.
    const repository = ada.getByLabel('Repository URL');
    await repository.fill('not a url');
    await ada.getByLabel('Gitspace name').fill(name);
    await ada.getByLabel('Terminal in the browser').check();
    await ada.getByLabel('Gitspace name').press('Enter');
    await shows(ada.getByText('The gitspace was not created'));
    await shows(ada.locator('.field-errors'), /must not contain spaces/);
    expect(await repository.getAttribute('aria-invalid')).toBe('true');
    await screenshot(ada, 'create-field-error', { phone: true });
    // By keyboard: focus the field, type, Enter submits.
    await repository.focus();
    await ada.keyboard.press('ControlOrMeta+A');
    await ada.keyboard.type(git.urlOf('hello'));
    await screenshot(ada, 'create', { phone: true });
    await ada.keyboard.press('Enter');
    await shows(ada.getByRole('heading', { name }));
    await ada.getByRole('link', { name: 'Gitspaces' }).first().click();
    // Live from the change stream: no reload.
    await shows(listRow(ada, name), /running/i, 90_000);
    await screenshot(ada, 'list', { phone: true });
    await listRow(ada, name).getByRole('link', { name }).click();
    await shows(ada.getByRole('heading', { name }));
    await screenshot(ada, 'gitspace-running', { phone: true });
  });

  test('open it in a new tab with one click and type in its terminal', async () => {
    const opened = ada.context().waitForEvent('page');
    await ada.getByRole('button', { name: /Open in a new tab/ }).click();
    const tab = await opened;
    await tab.waitForURL((url) => url.origin === gatewayUrl);
    await shows(tab.getByRole('status').filter({ hasText: 'connected' }));
    await tab.locator('.xterm').click();
    const word = `dashboard-${randomInt(100000, 999999)}`;
    await tab.keyboard.type(`echo ${word.replace('-', '-""')}`);
    await tab.keyboard.press('Enter');
    // The echoed line, not the typed one: the quotes are gone from it.
    await shows(tab.locator('.xterm-rows'), word);
    await screenshot(tab, 'terminal');
    await tab.close();
  });

  test('stop it, see Stopped', async () => {
    await ada.getByRole('button', { name: 'Stop' }).click();
    await shows(ada.locator('.page-header'), /stopped/i, 60_000);
    await screenshot(ada, 'gitspace-stopped', { phone: true });
    await ada.getByRole('button', { name: 'Start' }).click();
    await shows(ada.locator('.page-header'), /running/i, 90_000);
  });

  test('a start that fails shows the step and message; Retry after the cause is fixed runs it', async () => {
    const broken = `broken-${randomInt(1000, 9999)}`;
    const brokenName = `${broken}-ws`;
    await ada.getByRole('link', { name: 'Gitspaces' }).first().click();
    await ada.getByRole('link', { name: 'New gitspace' }).first().click();
    await ada.getByLabel('Repository URL').fill(git.urlOf(broken));
    await ada.getByLabel('Terminal in the browser').check();
    await ada.getByLabel('Gitspace name').fill(brokenName);
    await ada.getByRole('button', { name: 'Create and start' }).click();
    await shows(ada.getByRole('heading', { name: brokenName }));
    const failure = ada.getByRole('region', { name: /Start failed at/ });
    await shows(failure, undefined, 90_000);
    await shows(failure, /clone/i);
    await screenshot(ada, 'gitspace-failed', { phone: true });
    // The repository exists now: Retry runs the start again, and it succeeds.
    await git.createRepository(broken, { 'README.md': '# fixed\n' });
    await failure.getByRole('button', { name: 'Retry the start' }).click();
    await shows(ada.locator('.page-header'), /running/i, 90_000);
    await gone(failure);
    await screenshot(ada, 'gitspace-retried');

    // Delete it with the confirmation dialog, by keyboard.
    await ada.getByRole('button', { name: 'Delete' }).click();
    const dialog = ada.getByRole('dialog', { name: `Delete ${brokenName}?` });
    await shows(dialog);
    await screenshot(ada, 'delete-dialog', { phone: true, dialog: true });
    // Escape closes it and nothing is deleted.
    await ada.keyboard.press('Escape');
    await gone(dialog);
    await ada.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: /Delete/ }).focus();
    await ada.keyboard.press('Enter');
    await gone(dialog);
    await shows(ada.locator('.page-header'), /deleted/i, 60_000);
    await screenshot(ada, 'gitspace-deleted');
    // Deleted gitspaces are hidden from the list by default.
    await ada.getByRole('link', { name: 'Gitspaces' }).first().click();
    await shows(listRow(ada, name));
    expect(await listRow(ada, brokenName).count()).toBe(0);
  });

  test('as an administrator: create an infrastructure (a field error first) and a machine', async () => {
    const grace = await newPage();
    await grace.goto(apiUrl);
    await signInAtProvider(grace, 'grace');
    await shows(grace.getByRole('heading', { name: 'Gitspaces' }));
    await grace.getByRole('link', { name: 'Admin' }).click();
    await shows(grace.getByRole('row', { name: /local/ }), /runner/);
    await screenshot(grace, 'admin-infrastructures', { phone: true });
    await grace.getByRole('button', { name: /New infrastructure/ }).click();
    const dialog = grace.getByRole('dialog');
    await shows(dialog);
    await expectLabelled(grace);
    await dialog.getByLabel('Name').fill('lab');
    await dialog.getByLabel('Provider', { exact: true }).selectOption('local');
    await dialog.getByLabel('Gateway URL').fill(gatewayUrl);
    const config = dialog.getByLabel(/Config \(JSON/);
    await config.fill('{ "repositoryNetworks": { "allowLoopback": "yes" } }');
    await dialog.getByRole('button', { name: /Create/ }).click();
    // The API's schema error, next to the config and tied to it.
    await shows(dialog.locator('.field-errors'), /allowLoopback/);
    expect(await config.getAttribute('aria-invalid')).toBe('true');
    await screenshot(grace, 'admin-infrastructure-error', { dialog: true });
    await config.fill('{}');
    await dialog.getByRole('button', { name: /Create/ }).click();
    await shows(grace.getByRole('heading', { name: 'lab' }));
    await grace.getByRole('button', { name: 'Add machine' }).click();
    const machineDialog = grace.getByRole('dialog', { name: 'Add a machine' });
    await shows(machineDialog);
    await expectLabelled(grace);
    await screenshot(grace, 'admin-machine-form', { dialog: true });
    // By keyboard: Enter in a field submits the dialog's form.
    await machineDialog.getByLabel('Name').fill('small');
    await machineDialog.getByLabel('Machine type').fill('any');
    await machineDialog.getByLabel('Disk size (GB)').press('Enter');
    await gone(machineDialog);
    await shows(grace.getByRole('region', { name: 'Machines' }), 'small');
    await screenshot(grace, 'admin-infrastructure', { phone: true });
    // A warm pool on a `local` infrastructure: refused, the reason next to the field and tied to it.
    await grace.getByRole('button', { name: 'Edit machine small' }).click();
    const editDialog = grace.getByRole('dialog', { name: 'Edit machine small' });
    await shows(editDialog);
    const warmPool = editDialog.getByLabel('Warm pool');
    await warmPool.fill('2');
    await editDialog.getByRole('button', { name: 'Save' }).click();
    await shows(editDialog.locator('.field-errors'), /not offered by the 'local' provider/);
    expect(await warmPool.getAttribute('aria-invalid')).toBe('true');
    await editDialog.getByRole('button', { name: 'Cancel' }).click();
    await gone(editDialog);

    // Users: a new one's API token is shown once.
    await grace.getByRole('link', { name: 'Users' }).click();
    await shows(grace.getByRole('rowheader', { name: 'ada' }));
    await screenshot(grace, 'admin-users', { phone: true });
    await grace.getByRole('button', { name: '+ New user' }).click();
    await expectLabelled(grace);
    await grace.getByLabel('User name').fill('hopper');
    await grace.getByLabel('E-mail (optional)').fill('hopper@example.test');
    await grace.getByRole('button', { name: 'Create user' }).click();
    await shows(grace.getByLabel('API token of hopper'));
    // The invitation an OpenID Connect sign-in of hopper's will have to match.
    const listed = (await (await grace.request.get(`${apiUrl}/api/v1/users`)).json()) as {
      items: { name: string; email?: string }[];
    };
    expect(listed.items.find((user) => user.name === 'hopper')?.email).toBe('hopper@example.test');
    await screenshot(grace, 'admin-user-created', { dialog: true });
    await grace.getByRole('button', { name: 'Done' }).click();
    await shows(grace.getByRole('rowheader', { name: 'hopper' }));

    await grace.getByRole('link', { name: 'Reconciliation' }).click();
    await shows(grace.getByRole('img', { name: /Reconciliation per infrastructure/ }));
    await screenshot(grace, 'admin-reconciliation', { phone: true });
  });

  test('a gitspace URL without a session shows the gateway page whose link signs in and opens it', async () => {
    const gitspace = (await (await ada.request.get(`${apiUrl}/api/v1/gitspaces?state=running&limit=50`)).json()) as {
      items: { name: string; url: string }[];
    };
    const url = gitspace.items.find((item) => item.name === name)?.url;
    expect(url).toBeDefined();
    const stranger = await newPage();
    await stranger.goto(url!);
    await shows(stranger.getByRole('heading', { name: 'Sign in to open this gitspace' }));
    await screenshot(stranger, 'gateway-sign-in', { phone: true });
    await stranger.getByRole('link').first().click();
    await signInAtProvider(stranger, 'ada');
    await stranger.waitForURL((next) => next.origin === gatewayUrl);
    await shows(stranger.getByRole('status').filter({ hasText: 'connected' }));
  });

  test('no page had a script error or a console error', () => {
    expect(pageProblems).toEqual([]);
  });
});
