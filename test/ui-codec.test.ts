import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CODEC_COOKIE, createCodecServer } from '../codec/server';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { silentLogger } from '../common/logger';
import { freeLoopbackPort } from '../common/net';
import { EncryptionCodec, loadPayloadKeyRing } from '../common/payload-codec';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitServer, type GitServer } from './support/git-server';
import { CHROMIUM, CHROMIUM_ARGS, TEST_ARTIFACTS } from './support/chromium';
import { startTestStack, type TestStack } from './support/stack';

const { EventType } = temporal.api.enums.v1;

/**
 * Issue 11, the Web UI: the Temporal Web UI of the project's own dev server (engine/dev-server.ts, write actions off,
 * `--ui-codec-endpoint` as `npm start` sets it) shows payloads in plaintext only to a browser the codec server lets in.
 * Real dev server and UI, control plane, runner, gateway, git server and codec server (codec/server.ts with the key
 * ring from the shared data dir, as `npm run codec-server` reads it), headless Chromium. The browser follows the
 * README: sign in at `<codec server>/session`, then in the UI's codec server settings use the browser setting with
 * "Include cross-origin credentials". Every request the browser makes beyond loopback is aborted.
 */
describe('the Temporal Web UI decodes payloads through the codec server', () => {
  let git: GitServer;
  let stack: TestStack;
  let codecServer: Server;
  let codecUrl: string;
  let uiUrl: string;
  let browser: Browser;
  const codecToken = `codec-${randomBytes(16).toString('hex')}`;
  /** The gitspace's name: it reaches Temporal only inside encrypted payloads (beginOperation's result among them). */
  const marker = `uicodec-${randomBytes(5).toString('hex')}`;
  /** Printed by a second gitspace's failing devcontainer command: it reaches Temporal only in encrypted failures. */
  const failureMarker = `uifail-${randomBytes(5).toString('hex')}`;
  let workflowId: string;
  let runId: string;
  let failedWorkflowId: string;
  /** The event that completed beginOperation, and the start of its result's ciphertext as Temporal holds it. */
  let beginCompleted: number;
  let ciphertext: string;

  beforeAll(async () => {
    const bundle = await bundleLifecycleWorkflows();
    git = await startGitServer();
    await git.createRepository('app', { 'README.md': 'hi\n' });
    await git.createRepository('failing', {
      '.devcontainer/devcontainer.json': JSON.stringify({ postCreateCommand: `echo ${failureMarker}; exit 3` }),
    });

    // As `npm start` does: the UI is told where the codec server is; its write actions are off (the guard).
    const codecPort = await freeLoopbackPort();
    codecUrl = `http://127.0.0.1:${codecPort}`;
    stack = await startTestStack({ workflowBundle: bundle, temporalUiCodecEndpoint: codecUrl });
    uiUrl = stack.temporal.uiUrl!;

    // The codec server with the key ring the other parts keep in the shared data dir, for the UI's origin only.
    codecServer = createCodecServer({
      codec: new EncryptionCodec(await loadPayloadKeyRing({ dataDir: stack.dataDir })),
      token: codecToken,
      allowedOrigins: [uiUrl],
      logger: silentLogger,
    });
    await new Promise<void>((resolve) => codecServer.listen(codecPort, '127.0.0.1', resolve));

    // A real start through the API: beginOperation's result carries the gitspace's spec, name included.
    const created = await api('POST', '/api/v1/gitspaces', {
      name: marker,
      repository: { url: git.urlOf('app') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(created.status).toBe(201);
    const gitspaceId: string = created.body.gitspace.id;
    workflowId = lifecycleWorkflowId(gitspaceId);
    const handle = stack.controlPlane.client.workflow.getHandle(workflowId);
    await handle.result();
    expect((await api('GET', `/api/v1/gitspaces/${gitspaceId}`)).body.state).toBe('running');
    runId = (await handle.describe()).runId;
    // And a start that fails: the runner's failure, and the workflow's, carry the command's output.
    const failing = await api('POST', '/api/v1/gitspaces', {
      name: `${marker}-failing`,
      repository: { url: git.urlOf('failing') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(failing.status).toBe(201);
    failedWorkflowId = lifecycleWorkflowId(failing.body.gitspace.id);
    await expect(stack.controlPlane.client.workflow.getHandle(failedWorkflowId).result()).rejects.toThrow();

    // What Temporal holds, read without the keys.
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      const history = await new Client({ connection, namespace: 'default' }).workflow
        .getHandle(workflowId, runId)
        .fetchHistory();
      const events = history.events ?? [];
      const scheduled = events.find(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'beginOperation',
      )!;
      const completed = events.find(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED &&
          Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === Number(scheduled.eventId),
      )!;
      beginCompleted = Number(completed.eventId);
      const result = completed.activityTaskCompletedEventAttributes!.result!.payloads![0]!;
      ciphertext = Buffer.from(result.data!).toString('base64').slice(0, 24);
      expect(Buffer.from(temporal.api.history.v1.History.encode(history).finish()).includes(marker)).toBe(false);
    } finally {
      await connection.close();
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
    });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (codecServer) {
      codecServer.closeAllConnections();
      await new Promise((resolve) => codecServer.close(resolve));
    }
    await stack?.stop();
    await git?.stop();
  });

  const api = (method: string, route: string, body?: unknown) => stack.api(method, route, body);

  /** A fresh browser profile whose requests beyond loopback (the UI's news feed) are aborted, not sent. */
  async function loopbackContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    await context.route(
      (url) => url.hostname !== '127.0.0.1',
      (route) => route.abort(),
    );
    return context;
  }

  /** The README's sign-in: the codec server's own page, the token typed into its form. */
  async function signIn(page: Page, token: string): Promise<number> {
    await page.goto(`${codecUrl}/session`);
    await page.fill('input[name=token]', token);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${codecUrl}/session` && r.request().method() === 'POST'),
      page.click('button[type=submit]'),
    ]);
    return answer.status();
  }

  /**
   * The UI's codec server settings, as a user sets them: the browser setting (the cluster-level one offers no
   * credentials), the codec server's endpoint, "Include cross-origin credentials" on. Kept in the UI's local storage.
   */
  async function useCodecWithCredentials(page: Page): Promise<void> {
    await page.goto(`${uiUrl}/namespaces/default/workflows/${workflowId}/${runId}/history`);
    await page.locator('[data-testid^="data-encoder-status"]').click();
    const dialog = page.getByRole('dialog').filter({ hasText: 'Codec Server' });
    // The cluster-level endpoint is the one the project's dev server was started with.
    await dialog.getByText(codecUrl).waitFor();
    await dialog.getByTestId('use-local-endpoint-input').check();
    await dialog.locator('#data-encoder-endpoint-input').fill(codecUrl);
    await dialog.getByTestId('data-encoder-include-credentials').click();
    expect(await dialog.locator('#pass-access-credentials').isChecked()).toBe(true);
    await dialog.getByTestId('confirm-modal-button').click();
    await dialog.waitFor({ state: 'hidden' });
  }

  /**
   * Opens beginOperation's completion in the UI (its scheduled, started and completed events, expanded); resolves with
   * their text once `shown` appears in it, scrolled to the result.
   */
  async function openBeginResult(page: Page, shown: string): Promise<string> {
    await page.goto(`${uiUrl}/namespaces/default/workflows/${workflowId}/${runId}/history/events/${beginCompleted}`);
    const details = page.locator(`#event-details-${beginCompleted}-0`, { hasText: shown });
    await details.waitFor({ timeout: 30_000 });
    await details.getByText('Result', { exact: true }).last().scrollIntoViewIfNeeded();
    return details.innerText();
  }

  /** Opens the failed start's history page in the UI; resolves with the page's text once `shown` appears in it. */
  async function openFailedStart(page: Page, shown: string): Promise<string> {
    await page.goto(`${uiUrl}/namespaces/default/workflows/${failedWorkflowId}`);
    const body = page.locator('body', { hasText: shown });
    await body.waitFor({ timeout: 30_000 });
    return body.innerText();
  }

  /** The codec server's answers to this page's decode requests. */
  function decodeAnswers(page: Page): number[] {
    const statuses: number[] = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname.endsWith('/decode')) statuses.push(response.status());
    });
    return statuses;
  }

  it('serves the UI with the codec endpoint the dev server was started with', async () => {
    const settings = (await (await fetch(`${uiUrl}/api/v1/settings`)).json()) as any;
    expect(settings.Codec.Endpoint).toBe(codecUrl);
    expect(settings.DisableWriteActions).toBe(true);
  });

  it('serves only ciphertext from its own history API, which any browser reaching the UI can call', async () => {
    const query = new URLSearchParams({ 'execution.runId': runId, maximumPageSize: '1000' });
    const response = await fetch(`${uiUrl}/api/v1/namespaces/default/workflows/${workflowId}/history?${query}`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).toContain(ciphertext);
    // Payload metadata comes base64-encoded in the JSON: every payload is marked encrypted.
    expect(text).toContain(Buffer.from('binary/encrypted').toString('base64'));
    // Payload data comes base64-encoded in the JSON too: decode every string and look there as well.
    const decoded = [...text.matchAll(/"([A-Za-z0-9+/=]{16,})"/g)].map((m) =>
      Buffer.from(m[1]!, 'base64').toString('latin1'),
    );
    // The search attribute values are plaintext payloads: found once decoded, so the marker would be too.
    expect(decoded.some((part) => part.includes(workflowId.replace(/^gitspace-/, '')))).toBe(true);
    expect([text, ...decoded].some((part) => part.includes(marker))).toBe(false);
  });

  it("shows beginOperation's decoded result to a browser signed in to the codec server", async () => {
    const context = await loopbackContext();
    try {
      const page = await context.newPage();
      expect(await signIn(page, codecToken)).toBe(200);
      // The token sits in an HttpOnly cookie of the codec server's origin: the UI's scripts cannot read it.
      expect((await context.cookies(codecUrl)).map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([
        [CODEC_COOKIE, true, 'Strict'],
      ]);
      await useCodecWithCredentials(page);
      const decodes = decodeAnswers(page);

      const text = await openBeginResult(page, marker);
      // The spec in beginOperation's result, as JSON: the gitspace's name and its repository.
      expect(text).toMatch(new RegExp(`"name":\\s*"${marker}"`));
      expect(text).toContain(git.urlOf('app'));
      expect(text).not.toContain(ciphertext);
      expect(decodes.length).toBeGreaterThan(0);
      expect(decodes.every((status) => status === 200)).toBe(true);

      await mkdir(TEST_ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(TEST_ARTIFACTS, 'ui-codec-decoded.png') });

      // A failure's message and stack trace, sealed in its encoded attributes, are decoded too.
      const failed = await openFailedStart(page, failureMarker);
      expect(failed).toMatch(new RegExp(`"message":\\s*"devcontainer postCreateCommand failed[^"]*${failureMarker}`));
    } finally {
      await context.close();
    }
  });

  it('shows only ciphertext to a browser the codec server refuses: a wrong token at sign-in, or a stale cookie', async () => {
    const cases: { name: string; prepare: (context: BrowserContext, page: Page) => Promise<void> }[] = [
      {
        name: 'wrong-token',
        prepare: async (context, page) => {
          expect(await signIn(page, `${codecToken}-wrong`)).toBe(401);
          expect(await context.cookies(codecUrl)).toEqual([]);
        },
      },
      {
        // A cookie from before the token was rotated.
        name: 'stale-cookie',
        prepare: async (context) => {
          await context.addCookies([
            {
              name: CODEC_COOKIE,
              value: `codec-${randomBytes(16).toString('hex')}`,
              url: codecUrl,
              httpOnly: true,
              sameSite: 'Strict',
            },
          ]);
        },
      },
    ];
    for (const { name, prepare } of cases) {
      const context = await loopbackContext();
      try {
        const page = await context.newPage();
        await prepare(context, page);
        // The same UI settings as the allowed browser's: only the codec server's verdict differs.
        await useCodecWithCredentials(page);
        const decodes = decodeAnswers(page);

        const text = await openBeginResult(page, ciphertext);
        await page.getByTestId('data-encoder-status-error').waitFor();
        expect({ name, marker: text.includes(marker) }).toEqual({ name, marker: false });
        if (name === 'stale-cookie') {
          await mkdir(TEST_ARTIFACTS, { recursive: true });
          await page.screenshot({ path: path.join(TEST_ARTIFACTS, 'ui-codec-refused.png') });
        }
        const failed = await openFailedStart(page, 'Encoded failure');
        expect({ name, failureMarker: failed.includes(failureMarker) }).toEqual({ name, failureMarker: false });
        expect({ name, decodes: decodes.length > 0 && decodes.every((status) => status === 401) }).toEqual({
          name,
          decodes: true,
        });
      } finally {
        await context.close();
      }
    }
  });
});
