import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createRemoteJWKSet } from 'jose';
import { startControlPlane, type RunningControlPlane } from '../../api/server';
import { lifecycleWorkflowId } from '../../contracts/lifecycle';
import { silentLogger, type Logger } from '../../common/logger';
import { PAYLOAD_KEYS_FILE } from '../../common/payload-codec';
import type { DatabaseLocation } from '../../db/connect';
import type { DevServer } from '../../engine/dev-server';
import { createAccessTokenVerifier } from '../../gateway/auth';
import { createGateway, type Gateway } from '../../gateway/gateway';
import type { SignInSettings } from '../../api/auth/settings';
import { createFileRoutesStore } from '../../gateway/routes-store';
import { createLocalProvider, localMachinesRoot } from '../../providers/local/provider';
import { startRunner, type RunningRunner } from '../../workers/runner-process';
import type { RunnerMetricsListen } from '../../workers/runner-metrics';
import type { SecretStoreConfig } from '../../activities/secret-store';
import { startTestTemporal } from './temporal';

export interface TestStack {
  dataDir: string;
  temporal: DevServer;
  controlPlane: RunningControlPlane;
  runner?: RunningRunner;
  gateway: Gateway;
  gatewayUrl: string;
  gatewayAdminUrl: string;
  /** Calls the REST API as the admin (or with the given token). */
  api(method: string, route: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  /** Starts a runner: for the embedded `local` infrastructure, or for another one (an emulator run). */
  startRunner(options?: TestRunnerOptions): Promise<RunningRunner>;
  /** Stops the control plane and starts it again on the same database and data dir. */
  restartControlPlane(): Promise<RunningControlPlane>;
  /** Stops the gateway and starts a new one on the same ports and routes file (it has seen nothing yet). */
  restartGateway(): Promise<Gateway>;
  stop(): Promise<void>;
}

export const GATEWAY_ADMIN_TOKEN = 'test-gateway-admin-token';

/** The installation id the test runners tag and label machines with. */
export const TEST_INSTALLATION_ID = 'test';

export interface TestRunnerOptions {
  /** Default `local`. */
  infrastructureId?: string;
  /** Reach every agent here instead of at the machine's (fake) address. */
  agentEndpoint?: string;
  /** The fake Compute API's URL, for a `gcp` infrastructure. */
  gcpComputeEndpoint?: string;
  /** Where the runner resolves `repository.tokenRef` (none by default). */
  secretStore?: SecretStoreConfig;
  /** The runner contract version it speaks (default the current one): an older one acts as a runner not upgraded. */
  contractVersion?: number;
  /** Serve the runner's `GET /metrics` here (workers/runner-metrics.ts); none by default. */
  metrics?: RunnerMetricsListen;
  /** The VS Code server command of local `vscode-web` gitspaces (GITSPACES_LOCAL_VSCODE_COMMAND); none by default. */
  localVscodeCommand?: string;
  /** Serve `simulated` infrastructures (GITSPACES_ENABLE_SIMULATED_PROVIDER=1). */
  simulatedProvider?: boolean;
}

/**
 * The whole product in this process, on real parts: a Temporal dev server, the control plane (API + worker) on
 * PGlite or PostgreSQL, the real gateway, and a runner for the embedded `local` infrastructure.
 */
export async function startTestStack(
  options: {
    workflowBundle?: WorkflowBundleWithSourceMap;
    database?: DatabaseLocation;
    runner?: boolean;
    runnerPickupTimeoutSeconds?: number;
    /** How long reconciliation keeps a machine of an unknown gitspace before deleting it. */
    orphanGraceSeconds?: number;
    /** Temporal's SQLite file (default in memory). */
    temporalDbFile?: string;
    /** Serve Temporal's Web UI (at `temporal.uiUrl`), told to decode payloads through this codec server. */
    temporalUiCodecEndpoint?: string;
    /** Where every part logs, the dev server's output included (default nowhere). */
    logger?: Logger;
    /** The API's port (default any free one): a dashboard's sign-in needs its callback URL up front. */
    apiPort?: number;
    /** Dashboard sign-in (the dashboard's browser test); API tokens only by default. */
    signIn?: SignInSettings;
    /** Where the gateway sends a browser that opens a gitspace without a session (none by default). */
    dashboardUrl?: string;
    /** How long access tokens live (default 600 s); short to see SSH tunnels outlive their first token. */
    accessTokenTtlSeconds?: number;
    /** The payload key ring's text for every part (the golden recorder reuses the recorded ring); new when absent. */
    payloadKeysText?: string;
    /** The auto-stop's warning lead and minimum (api/auto-stop.ts); the defaults where absent. */
    autoStop?: { warningSeconds?: number; minSeconds?: number };
    /** The API takes `simulated` infrastructures (GITSPACES_ENABLE_SIMULATED_PROVIDER=1). */
    simulatedProvider?: boolean;
    /** How often warm pools are maintained (default 60 s). */
    warmPoolEverySeconds?: number;
  } = {},
): Promise<TestStack> {
  const logger = options.logger ?? silentLogger;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-stack-'));
  if (options.payloadKeysText)
    await writeFile(path.join(dataDir, PAYLOAD_KEYS_FILE), options.payloadKeysText, { mode: 0o600 });
  const temporal = await startTestTemporal({
    logger,
    ...(options.temporalDbFile ? { dbFile: options.temporalDbFile } : {}),
    ...(options.temporalUiCodecEndpoint ? { uiCodecEndpoint: options.temporalUiCodecEndpoint } : {}),
  });
  const routes = await createFileRoutesStore(path.join(dataDir, 'gateway'));
  let controlPlaneUrl = '';
  const newGateway = () =>
    createGateway({
      ...(options.dashboardUrl ? { dashboardUrl: options.dashboardUrl } : {}),
      logger,
      routes,
      adminToken: GATEWAY_ADMIN_TOKEN,
      verifier: createAccessTokenVerifier({
        keys: (header, token) =>
          createRemoteJWKSet(new URL(`${controlPlaneUrl}/api/v1/.well-known/jwks.json`))(header, token),
      }),
    });
  let gateway = newGateway();
  const { publicUrl, adminUrl } = await gateway.listen({ host: '127.0.0.1', port: 0, adminPort: 0 });
  const controlPlaneConfig = {
    dataDir,
    database: options.database ?? ({ kind: 'pglite' } as DatabaseLocation),
    host: '127.0.0.1',
    port: options.apiPort ?? 0,
    temporal: temporal.connection,
    embeddedDefaults: true,
    publicGatewayUrl: publicUrl,
    runnerPickupTimeoutSeconds: options.runnerPickupTimeoutSeconds ?? 30,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 600,
    reconcileEverySeconds: 3600,
    ...(options.orphanGraceSeconds ? { orphanGraceSeconds: options.orphanGraceSeconds } : {}),
    eventPollMs: 100,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : {}),
    ...(options.signIn ? { signIn: options.signIn } : {}),
    ...(options.autoStop ? { autoStop: options.autoStop } : {}),
    ...(options.simulatedProvider ? { simulatedProvider: true } : {}),
    ...(options.warmPoolEverySeconds ? { warmPoolEverySeconds: options.warmPoolEverySeconds } : {}),
  };
  // A control plane that fails to start must not leave the dev server and gateway running after the test file.
  const controlPlane = await startControlPlane(controlPlaneConfig, logger).catch(async (error: unknown) => {
    await gateway.close();
    await temporal.stop();
    throw error;
  });
  controlPlaneUrl = controlPlane.url;
  const runners: RunningRunner[] = [];

  const stack: TestStack = {
    dataDir,
    temporal,
    controlPlane,
    gateway,
    gatewayUrl: publicUrl,
    gatewayAdminUrl: adminUrl,
    async api(method, route, body, token = stack.controlPlane.adminToken) {
      const response = await fetch(`${stack.controlPlane.url}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    async startRunner(runnerOptions = {}) {
      const started = await startRunner(
        {
          infrastructureId: runnerOptions.infrastructureId ?? 'local',
          temporal: temporal.connection,
          dataDir,
          gatewayAdminUrl: adminUrl,
          gatewayAdminToken: GATEWAY_ADMIN_TOKEN,
          installationId: TEST_INSTALLATION_ID,
          pollIntervalMs: 200,
          ...(runnerOptions.agentEndpoint ? { agentEndpoint: runnerOptions.agentEndpoint } : {}),
          ...(runnerOptions.gcpComputeEndpoint ? { gcpComputeEndpoint: runnerOptions.gcpComputeEndpoint } : {}),
          ...(runnerOptions.secretStore ? { secretStore: runnerOptions.secretStore } : {}),
          ...(runnerOptions.contractVersion !== undefined ? { contractVersion: runnerOptions.contractVersion } : {}),
          ...(runnerOptions.metrics ? { metrics: runnerOptions.metrics } : {}),
          ...(runnerOptions.localVscodeCommand ? { localVscodeCommand: runnerOptions.localVscodeCommand } : {}),
          ...(runnerOptions.simulatedProvider ? { simulatedProvider: true } : {}),
          // CI installs bubblewrap: there a sandbox probe that fails stops the stack at once, instead of every local
          // gitspace running unsandboxed until the isolation tests notice.
          ...(process.env.CI ? { localSandbox: 'required' as const } : {}),
        },
        logger,
      );
      // Stopping twice (a test stopped it, then stack.stop()) stops it once.
      let stopping: Promise<void> | undefined;
      stack.runner = {
        ...(started.metricsUrl ? { metricsUrl: started.metricsUrl } : {}),
        stop: () => (stopping ??= started.stop()),
      };
      runners.push(stack.runner);
      return stack.runner;
    },
    async restartGateway() {
      await gateway.close();
      gateway = newGateway();
      await gateway.listen({
        host: '127.0.0.1',
        port: Number(new URL(publicUrl).port),
        adminPort: Number(new URL(adminUrl).port),
      });
      stack.gateway = gateway;
      return gateway;
    },
    async restartControlPlane() {
      await stack.controlPlane.stop();
      stack.controlPlane = await startControlPlane(controlPlaneConfig, logger);
      controlPlaneUrl = stack.controlPlane.url;
      return stack.controlPlane;
    },
    async stop() {
      // Agents outlive runners by design; a test run must not leave any behind. The runners stop first (a worker
      // finishes its activities as it stops), so no start still making a machine can add one after the list.
      for (const runner of runners) await runner.stop();
      const machines = createLocalProvider({ rootDir: localMachinesRoot(dataDir), logger: silentLogger });
      const options = { idempotencyKey: 'test-cleanup', signal: AbortSignal.timeout(30_000) };
      for (const machine of await machines.list(options)) await machines.delete(machine.gitspaceId, options);
      await stack.controlPlane.stop();
      await gateway.close();
      await temporal.stop();
      await rm(dataDir, { recursive: true, force: true });
      await rm(localMachinesRoot(dataDir), { recursive: true, force: true });
    },
  };
  if (options.runner !== false) await stack.startRunner();
  return stack;
}

/**
 * Polls the gitspace until `done` holds, failing with the last state seen when it does not in time. `stack` may be
 * any API client shaped like the stack's (another process's API, say).
 */
export async function waitForGitspace(
  stack: Pick<TestStack, 'api'>,
  id: string,
  done: (gitspace: any) => boolean,
  timeoutMs = 60_000,
): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    last = (await stack.api('GET', `/api/v1/gitspaces/${id}`)).body;
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `gitspace ${id} did not reach the expected state in ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`,
  );
}

/**
 * Waits until the gitspace's latest lifecycle workflow has closed. Its state is recorded a moment before it does, so
 * a test that starts a workflow under the same id itself (an attacker's) must wait for this, not for the state.
 */
export async function lifecycleClosed(stack: TestStack, id: string): Promise<void> {
  await stack.controlPlane.client.workflow
    .getHandle(lifecycleWorkflowId(id))
    .result()
    .catch(() => undefined);
}
