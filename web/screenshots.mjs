/**
 * Screenshots of every dashboard page at laptop and phone widths, for a person to look at: serves the built dashboard
 * (dist/web, `npm run build:web` first) beside a stand-in of the API that answers as the dashboard contract says
 * (issue 14), then drives headless Chromium through the pages. The stand-in refuses a state-changing request without
 * the session's CSRF token, holds event streams open and checks request bodies, so the run also catches a dashboard
 * that stops speaking the contract. Not a test of the API: the real stack's browser test is that.
 *
 * Usage: node web/screenshots.mjs [--out test-artifacts/web] [--chromium /usr/bin/chromium]
 *        node web/screenshots.mjs --serve   (only the dashboard and the stand-in, to look around; Ctrl-C ends it)
 */
import { createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'test-artifacts/web' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    serve: { type: 'boolean', default: false },
  },
});
const ROOT = path.resolve(import.meta.dirname, '..', 'dist', 'web');
if (!existsSync(path.join(ROOT, 'index.html'))) throw new Error(`no ${ROOT}/index.html: run npm run build:web first`);

const CSRF = 'csrf-token-of-the-session';
const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString();
const ada = { id: 'u-ada', name: 'ada', role: 'admin', createdAt: minutesAgo(60 * 24 * 30) };
const gitspace = (id, name, state, extra = {}) => ({
  id,
  name,
  state,
  owner: 'ada',
  repository: { url: `https://git.example.com/acme/${name}.git`, branch: 'main', hasToken: false },
  infrastructureId: 'local',
  machineId: 'local-default',
  ide: 'vscode-web',
  createdAt: minutesAgo(600),
  updatedAt: minutesAgo(3),
  ...extra,
});
const GITSPACES = [
  gitspace('gs-api', 'api', 'running', { url: 'http://127.0.0.1:3001/gitspaces/gs-api/' }),
  gitspace('gs-web', 'web-frontend', 'starting', {
    ide: 'terminal',
    operation: {
      id: 'op-1',
      action: 'start',
      workflowId: 'gitspace-gs-web',
      runId: 'r1',
      status: 'running',
      step: 'waitForAgent',
      createdAt: minutesAgo(0.7),
    },
  }),
  gitspace('gs-docs', 'docs', 'stopped', {
    repository: { url: 'ssh://git@git.example.com/acme/docs', hasToken: true },
  }),
  gitspace('gs-data', 'data-pipeline', 'error', {
    infrastructureId: 'gcp-eu',
    machineId: 'gcp-eu-standard-4',
    lastError: {
      action: 'start',
      step: 'prepareWorkspace',
      message: 'the repository could not be reached or cloned',
      cause: 'CloneFailedError',
    },
  }),
  gitspace('gs-old', 'old-experiment', 'deleted'),
];
const user = { type: 'user', id: 'u-ada', name: 'ada' };
const event = (seq, type, message, extra = {}) => ({
  seq,
  type,
  message,
  data: {},
  actor: user,
  createdAt: minutesAgo(10 - seq * 0.2),
  ...extra,
});
const EVENTS = {
  'gs-web': [
    event(1, 'created', "gitspace 'web-frontend' created"),
    event(2, 'state', 'start requested', { state: 'starting', createdAt: minutesAgo(0.7) }),
    event(3, 'step', 'ensure the machine exists and runs', {
      data: { step: 'ensureMachine' },
      createdAt: minutesAgo(0.6),
    }),
    event(4, 'step', 'wait for the machine', { data: { step: 'waitForMachine' }, createdAt: minutesAgo(0.5) }),
    event(5, 'step', 'wait for the gitspace agent', { data: { step: 'waitForAgent' }, createdAt: minutesAgo(0.3) }),
  ],
  'gs-data': [
    event(1, 'created', "gitspace 'data-pipeline' created"),
    event(2, 'state', 'start requested', { state: 'starting' }),
    event(3, 'step', 'ensure the machine exists and runs', { data: { step: 'ensureMachine' } }),
    event(4, 'step', 'wait for the gitspace agent', { data: { step: 'waitForAgent' } }),
    event(5, 'step', 'prepare the workspace', { data: { step: 'prepareWorkspace' } }),
    event(6, 'state', "start failed at 'prepare the workspace': the repository could not be reached or cloned", {
      state: 'error',
      data: {
        action: 'start',
        step: 'prepareWorkspace',
        message: 'the repository could not be reached or cloned',
        cause: 'CloneFailedError',
      },
    }),
    event(7, 'reconcile', 'reconciliation stopped the machine of this gitspace', { actor: { type: 'reconciler' } }),
  ],
};
const INFRASTRUCTURES = [
  {
    id: 'local',
    name: 'local',
    provider: 'local',
    config: { repositoryNetworks: { allowLoopback: true } },
    gatewayUrl: 'http://127.0.0.1:3001',
    runnerPublicKeys: ['x25519:3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    sealedTokens: { 'x25519:3q2-7w': 1 },
    taskQueue: 'gitspaces-infra-local',
    createdAt: minutesAgo(60 * 24 * 30),
    updatedAt: minutesAgo(60 * 24),
  },
  {
    id: 'gcp-eu',
    name: 'gcp-eu',
    provider: 'gcp',
    config: { project: 'acme-dev-123', region: 'europe-west1', zones: ['europe-west1-b'] },
    gatewayUrl: 'https://gitspaces-gw.acme.example',
    runnerPublicKeys: [],
    sealedTokens: {},
    taskQueue: 'gitspaces-infra-gcp-eu',
    createdAt: minutesAgo(60 * 24 * 3),
    updatedAt: minutesAgo(60 * 24 * 3),
  },
];
const RUNNERS = {
  local: [
    {
      identity: '4242@devbox gitspaces-runner/0.1.0 contract/3',
      version: '0.1.0',
      contractVersion: 3,
      upToDate: true,
      lastAccessTime: minutesAgo(0.2),
    },
  ],
  'gcp-eu': [
    {
      identity: '17@runner-eu-1 gitspaces-runner/0.0.9 contract/2',
      version: '0.0.9',
      contractVersion: 2,
      upToDate: false,
      lastAccessTime: minutesAgo(1),
    },
  ],
};
const MACHINES = {
  local: [
    {
      id: 'local-default',
      infrastructureId: 'local',
      name: 'default',
      machineType: 'local',
      diskSizeGb: 20,
      createdAt: minutesAgo(999),
    },
  ],
  'gcp-eu': [
    {
      id: 'gcp-eu-standard-4',
      infrastructureId: 'gcp-eu',
      name: 'standard-4',
      machineType: 'e2-standard-4',
      diskSizeGb: 100,
      region: 'europe-west1',
      zone: 'europe-west1-b',
      createdAt: minutesAgo(999),
    },
  ],
};
const USERS = [
  ada,
  { id: 'u-grace', name: 'grace', role: 'member', createdAt: minutesAgo(60 * 24 * 7) },
  { id: 'u-linus', name: 'linus', role: 'member', createdAt: minutesAgo(60 * 24 * 2), disabled: true },
];
const METRICS = `# HELP gitspaces_reconcile_runs_total finished reconciliation runs
# TYPE gitspaces_reconcile_runs_total counter
gitspaces_reconcile_runs_total{infrastructure="local"} 42
gitspaces_reconcile_runs_total{infrastructure="gcp-eu"} 40
gitspaces_reconcile_machines_total{infrastructure="local",action="stopped"} 3
gitspaces_reconcile_machines_total{infrastructure="local",action="deleted"} 1
gitspaces_reconcile_machines_total{infrastructure="gcp-eu",action="stopped"} 5
gitspaces_reconcile_machines_total{infrastructure="gcp-eu",action="deleted"} 2
gitspaces_reconcile_routes_removed_total{infrastructure="local"} 4
gitspaces_reconcile_repairs_failed_total{infrastructure="gcp-eu"} 1
gitspaces_reconcile_last_run_timestamp_seconds{infrastructure="local"} ${Math.floor(Date.now() / 1000) - 90}
gitspaces_reconcile_last_run_timestamp_seconds{infrastructure="gcp-eu"} ${Math.floor(Date.now() / 1000) - 300}
gitspaces_orphan_machines{infrastructure="local"} 0
gitspaces_orphan_machines{infrastructure="gcp-eu"} 2
gitspaces_gitspaces{infrastructure="local",state="running"} 1
`;

/** What the stand-in saw that the contract forbids; the run fails when it is not empty. */
const violations = [];
/** The open change streams (GET /api/v1/gitspaces/changes), to push a change to. */
const changeStreams = new Set();

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const error = (res, status, code, message, fields) =>
  json(res, status, { error: { code, message, ...(fields ? { fields } : {}) } });
const readBody = (req) =>
  new Promise((resolve) => {
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => resolve(text ? JSON.parse(text) : undefined));
  });

async function api(req, res, url) {
  const signedIn = /(^|;\s*)gitspaces_session=ok/.test(req.headers.cookie ?? '');
  const p = url.pathname;
  if (p === '/auth/options') return json(res, 200, { oidc: true, token: true, providerName: 'Acme SSO' });
  if (p === '/auth/token' && req.method === 'POST') {
    const body = await readBody(req);
    if (body?.token !== 'right-token') return error(res, 401, 'unauthenticated', 'that API token is not valid');
    res.writeHead(204, { 'set-cookie': 'gitspaces_session=ok; Path=/; HttpOnly; SameSite=Lax' });
    return res.end();
  }
  if (!signedIn) return error(res, 401, 'unauthenticated', 'sign in first');
  if (['POST', 'PATCH', 'PUT', 'DELETE'].includes(req.method) && req.headers['x-csrf-token'] !== CSRF) {
    violations.push(`${req.method} ${p} without the CSRF header`);
    return error(res, 403, 'csrf', 'the X-CSRF-Token header is missing or wrong');
  }
  if (p === '/api/v1/session') {
    return json(res, 200, {
      user: ada,
      csrfToken: CSRF,
      signIn: { oidc: true, token: true },
      temporalUiUrl: 'http://127.0.0.1:8233',
    });
  }
  if (p === '/auth/logout') return res.writeHead(204).end();
  if (p === '/api/v1/gitspaces/changes' || /^\/api\/v1\/gitspaces\/[^/]+\/events$/.test(p)) {
    if (req.headers.accept !== 'text/event-stream') violations.push(`${p} asked without Accept: text/event-stream`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders(); // the browser's EventSource opens on the headers, before any event
    const id = p.split('/')[4];
    for (const e of EVENTS[id] ?? []) res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    if (id === 'changes') {
      changeStreams.add(res);
      res.on('close', () => changeStreams.delete(res));
    }
    return; // held open, as the API does
  }
  if (p === '/api/v1/gitspaces' && req.method === 'GET') {
    const states = (url.searchParams.get('state') ?? '').split(',');
    if (!url.searchParams.get('limit')) violations.push('GET /api/v1/gitspaces without limit');
    return json(res, 200, { items: GITSPACES.filter((g) => states.includes(g.state)) });
  }
  if (p === '/api/v1/gitspaces' && req.method === 'POST') {
    const body = await readBody(req);
    if (!req.headers['idempotency-key']) violations.push('POST /api/v1/gitspaces without Idempotency-Key');
    return error(
      res,
      400,
      'invalid_request',
      'the request body is invalid: repository.url must be a URL; name is required',
      [
        {
          path: 'repository.url',
          message: `scheme '${String(body?.repository?.url).split(':')[0]}' is not supported; use one of https, http, ssh, git`,
        },
        { path: 'machineId', message: 'is required' },
      ],
    );
  }
  const one = /^\/api\/v1\/gitspaces\/([^/]+)$/.exec(p);
  if (one && req.method === 'GET') {
    const found = GITSPACES.find((g) => g.id === decodeURIComponent(one[1]));
    return found ? json(res, 200, found) : error(res, 404, 'not_found', `gitspace '${one[1]}' does not exist`);
  }
  if (p === '/api/v1/infrastructures') return json(res, 200, { items: INFRASTRUCTURES });
  const infra = /^\/api\/v1\/infrastructures\/([^/]+)(\/machines)?$/.exec(p);
  if (infra) {
    const found = INFRASTRUCTURES.find((i) => i.id === infra[1]);
    if (!found) return error(res, 404, 'not_found', `infrastructure '${infra[1]}' does not exist`);
    if (infra[2]) return json(res, 200, { items: MACHINES[found.id] ?? [] });
    return json(res, 200, { ...found, runnerContractVersion: 3, runners: RUNNERS[found.id] ?? [] });
  }
  if (p === '/api/v1/users' && req.method === 'POST') {
    const body = await readBody(req);
    const created = { id: 'u-new', name: body.name, role: 'member', createdAt: new Date().toISOString() };
    return json(res, 201, { user: created, token: 'gs_3b1f0c9e2d7a4f6b8c5e1a9d0f2b4c6e' });
  }
  if (p === '/api/v1/users') return json(res, 200, { items: USERS });
  if (/^\/api\/v1\/users\/[^/]+\/tokens$/.test(p)) {
    return json(res, 200, {
      items: [{ id: 'tok-1', name: 'ci', createdAt: minutesAgo(9000), lastUsedAt: minutesAgo(5) }],
    });
  }
  if (p === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(METRICS);
  }
  return error(res, 404, 'not_found', `${req.method} ${p} is not in the stand-in`);
}

function serveFile(res, file) {
  res.writeHead(200, {
    'content-type':
      { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' }[
        path.extname(file)
      ] ?? 'application/octet-stream',
  });
  createReadStream(file).pipe(res);
}

/** Tells every open change stream that `gitspace` changed, as the API does when a state changes. */
function pushChange(gitspace) {
  for (const stream of changeStreams) stream.write(`event: gitspace\ndata: ${JSON.stringify(gitspace)}\n\n`);
  return changeStreams.size;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (/^\/(api|auth|metrics)(\/|$)/.test(url.pathname)) {
    api(req, res, url).catch((failure) => error(res, 500, 'stand_in', String(failure)));
    return;
  }
  const file = path.join(ROOT, path.normalize(url.pathname));
  if (file.startsWith(ROOT) && existsSync(file) && statSync(file).isFile()) return serveFile(res, file);
  serveFile(res, path.join(ROOT, 'index.html')); // client-side routing, as the API does
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;
if (args.serve) {
  console.log(`The dashboard with a stand-in API: ${base}/sign-in (API token: right-token)`);
  await new Promise(() => {});
}

const browser = await chromium.launch({ executablePath: args.chromium });
mkdirSync(args.out, { recursive: true });
const shots = [];
try {
  for (const [width, height, device] of [
    [1280, 800, 'laptop'],
    [390, 844, 'phone'],
  ]) {
    const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on('pageerror', (failure) => violations.push(`page error on ${page.url()}: ${failure.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('status of 4')) {
        violations.push(`console error on ${page.url()}: ${message.text()}`);
      }
    });
    /** The whole page from its top; a dialog only as far as the window (its backdrop covers only that). */
    const shoot = async (name, { fullPage = true } = {}) => {
      const file = path.join(args.out, `${name}-${device}.png`);
      if (fullPage) await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: file, fullPage });
      shots.push(file);
    };

    await page.goto(`${base}/gitspaces/gs-api`);
    await page.waitForURL(/\/sign-in\?return_to=/);
    await page
      .getByRole('button', { name: 'Sign in with Acme SSO' })
      .or(page.getByRole('link', { name: 'Sign in with Acme SSO' }))
      .waitFor();
    await shoot('sign-in');
    await page.getByLabel('API token').fill('wrong-token');
    await page.getByRole('button', { name: 'Sign in with an API token' }).click();
    await page.getByText('that API token is not valid').waitFor();
    await shoot('sign-in-refused');
    await page.getByLabel('API token').fill('right-token');
    await page.getByRole('button', { name: 'Sign in with an API token' }).click();
    await page.waitForURL(`${base}/gitspaces/gs-api`);

    await page.goto(`${base}/`);
    await page.getByRole('link', { name: 'data-pipeline' }).waitFor();
    await shoot('gitspaces');
    // Live: a change on the stream moves the row without a reload or a poll.
    const row = page.getByRole('listitem').filter({ hasText: 'web-frontend' });
    await page.getByText('Live', { exact: true }).waitFor();
    if (pushChange({ ...GITSPACES[1], state: 'running', operation: undefined }) === 0) {
      violations.push('the list opened no change stream');
    }
    await row.getByText('Running', { exact: true }).waitFor({ timeout: 5000 });
    await row.getByRole('button', { name: 'Open web-frontend' }).waitFor();
    await page.getByText('Deleted', { exact: true }).click();
    await page.getByRole('link', { name: 'old-experiment' }).waitFor();
    await shoot('gitspaces-deleted');

    await page.goto(`${base}/gitspaces/new`);
    await page.getByLabel('Repository URL').fill('file:///etc/passwd');
    await page.getByRole('button', { name: 'Create and start' }).click();
    await page.getByText("scheme 'file' is not supported").waitFor();
    await shoot('create-with-errors');

    await page.goto(`${base}/gitspaces/gs-web`);
    await page.getByText('Starting: wait for the gitspace agent').waitFor();
    await shoot('gitspace-starting');
    await page.goto(`${base}/gitspaces/gs-data`);
    await page.getByRole('heading', { name: /Start failed at/ }).waitFor();
    await shoot('gitspace-error');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').waitFor();
    await shoot('gitspace-delete-dialog', { fullPage: false });
    await page.keyboard.press('Escape');

    await page.goto(`${base}/admin/infrastructures`);
    await page.getByText('1 runner, up to date').waitFor();
    await shoot('admin-infrastructures');
    await page.goto(`${base}/admin/infrastructures/gcp-eu`);
    await page.getByText('standard-4').first().waitFor();
    await shoot('admin-infrastructure');
    await page.getByRole('button', { name: 'Edit settings' }).click();
    await page.getByRole('dialog').waitFor();
    await shoot('admin-infrastructure-edit', { fullPage: false });
    await page.keyboard.press('Escape');
    await page.goto(`${base}/admin/users`);
    await page.getByRole('rowheader', { name: 'grace' }).waitFor();
    await shoot('admin-users');
    await page.getByRole('button', { name: '+ New user' }).click();
    await page.getByLabel('User name').fill('hopper');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByLabel('API token of hopper').waitFor();
    await shoot('admin-user-created', { fullPage: false });
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('button', { name: 'Tokens of grace' }).click();
    await page.getByRole('rowheader', { name: 'ci' }).waitFor();
    await shoot('admin-user-tokens', { fullPage: false });
    await page.keyboard.press('Escape');
    await page.goto(`${base}/admin/reconciliation`);
    await page.getByRole('img', { name: /Reconciliation per infrastructure/ }).waitFor();
    await shoot('admin-reconciliation');
    await context.close();
  }
} finally {
  await browser.close();
  server.closeAllConnections();
  server.close();
}
console.log(shots.join('\n'));
if (violations.length > 0) {
  console.error(`The dashboard broke the contract:\n${violations.join('\n')}`);
  process.exitCode = 1;
}
