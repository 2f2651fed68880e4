import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { ReconcileResult } from '../../activities/bookkeeping';
import { agentSecretIn } from '../../providers/bootstrap';
import { silentLogger } from '../../common/logger';
import { CONTROL_PLANE_TASK_QUEUE } from '../../contracts/lifecycle';
import { freeLoopbackPort } from '../../common/net';
import { serveAgent, type ServedAgent } from './agent';
import { waitForGitspace, type TestStack } from './stack';

/**
 * The agent of an emulator's machine, on one loopback port. moto and the fake Compute API give machines fake private
 * addresses that are never dialed, so the runner is pointed here (GITSPACES_AGENT_ENDPOINT) and a test serves the
 * agent of the gitspace it is starting, as the machine's bootstrap would: with the agent secret found in the
 * bootstrap script the provider gave the machine (user data, startup-script metadata). The runner rotates that secret
 * on every start; like a machine that runs its bootstrap on every boot, the slot restarts the agent when it changes.
 */
export interface AgentSlot {
  /** `http://127.0.0.1:<port>`: the runner's agent endpoint. */
  url: string;
  /** Serves the agent of this gitspace (replacing the one served before); returns its workspace directory. */
  serve(gitspaceId: string): Promise<{ workspaceDir: string }>;
  close(): Promise<void>;
}

/** The bootstrap script the emulator holds for a gitspace's machine now, if it has one. */
export type BootstrapScriptOf = (gitspaceId: string) => Promise<string | undefined>;

/** Reserves the port; `bootstrapOf` reads the machine's bootstrap from the emulator. */
export async function startAgentSlot(bootstrapOf: BootstrapScriptOf, dataDir: string): Promise<AgentSlot> {
  const port = await freeLoopbackPort();
  let current: ServedAgent | undefined;
  let watching: AbortController | undefined;
  const close = async () => {
    watching?.abort();
    watching = undefined;
    const agent = current;
    current = undefined;
    await agent?.close();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    async serve(gitspaceId) {
      await close();
      const workspaceDir = path.join(dataDir, 'emulated-machines', gitspaceId, 'workspace');
      await mkdir(path.dirname(workspaceDir), { recursive: true });
      const stop = (watching = new AbortController()).signal;
      void (async () => {
        let served: string | undefined;
        while (!stop.aborted) {
          const script = await bootstrapOf(gitspaceId).catch(() => undefined);
          const secret = script ? agentSecretIn(script) : undefined;
          if (secret && secret !== served) {
            // A machine runs its bootstrap again on the next boot: a failed (re)start is tried again next round.
            try {
              await current?.close();
              current = undefined;
              const agent = await serveAgent(
                { gitspaceId, secret, workspaceDir, ide: 'terminal', logger: silentLogger },
                port,
              );
              if (stop.aborted) await agent.close();
              else [current, served] = [agent, secret];
            } catch {
              // The port is still being released, or the slot was closed meanwhile.
            }
          }
          await sleep(100);
        }
      })();
      return { workspaceDir };
    },
    close,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Registers a cloud infrastructure and its machines through the REST API, as an administrator does. */
export async function registerInfrastructure(
  stack: TestStack,
  infrastructure: { name: string; provider: 'aws' | 'gcp'; config: Record<string, unknown> },
  machines: { name: string; machineType: string; diskSizeGb: number }[],
): Promise<void> {
  const created = await stack.api('POST', '/api/v1/infrastructures', {
    ...infrastructure,
    gatewayUrl: stack.gatewayUrl,
  });
  if (created.status !== 201) throw new Error(`infrastructure refused: ${JSON.stringify(created.body)}`);
  for (const machine of machines) {
    const response = await stack.api('POST', `/api/v1/infrastructures/${infrastructure.name}/machines`, machine);
    if (response.status !== 201) throw new Error(`machine refused: ${JSON.stringify(response.body)}`);
  }
}

/** Creates a gitspace without starting it (its agent must be served first), and returns its id. */
export async function createStoppedGitspace(
  stack: TestStack,
  gitspace: { name: string; repositoryUrl: string; infrastructureId: string; machineId: string },
): Promise<string> {
  const response = await stack.api('POST', '/api/v1/gitspaces', {
    name: gitspace.name,
    repository: { url: gitspace.repositoryUrl },
    infrastructureId: gitspace.infrastructureId,
    machineId: gitspace.machineId,
    ide: 'terminal',
    start: false,
  });
  if (response.status !== 201 || response.body.gitspace.state !== 'stopped') {
    throw new Error(`gitspace refused: ${JSON.stringify(response.body)}`);
  }
  return response.body.gitspace.id as string;
}

/**
 * Asks for an action (`start`, `stop`, `retry` or `delete`) and waits until that very operation has finished; returns
 * the gitspace as it then is.
 */
export async function runAction(
  stack: TestStack,
  gitspaceId: string,
  action: string,
  timeoutMs = 90_000,
): Promise<any> {
  const response =
    action === 'delete'
      ? await stack.api('DELETE', `/api/v1/gitspaces/${gitspaceId}`)
      : await stack.api('POST', `/api/v1/gitspaces/${gitspaceId}/actions`, { action });
  if (response.status !== 202) throw new Error(`${action} refused: ${JSON.stringify(response.body)}`);
  const runId = response.body.operation.runId as string;
  return waitForGitspace(
    stack,
    gitspaceId,
    (g) => g.operation?.runId === runId && g.operation.status !== 'running',
    timeoutMs,
  );
}

/** Runs an infrastructure's reconcile workflow now, as its schedule does, and returns what it did. */
export async function reconcileNow(stack: TestStack, infrastructureId: string, name: string): Promise<ReconcileResult> {
  return stack.controlPlane.client.workflow.execute('reconcileInfrastructure', {
    taskQueue: CONTROL_PLANE_TASK_QUEUE,
    workflowId: `reconcile-${infrastructureId}-test-${name}`,
    args: [{ infrastructureId }],
  });
}
