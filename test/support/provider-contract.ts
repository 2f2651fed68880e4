/**
 * The provider contract (DESIGN.md §5, STYLE.md: one contract suite runs against every provider): the scenarios every
 * provider must pass, through the REST API and the workflows on a real Temporal dev server, control plane, gateway and
 * runner, with the provider against its emulator (moto, the fake Compute API) or the host (`local`). A target
 * (./provider-contract-<provider>.ts) starts its environment and says how to look at its cloud from outside the
 * provider; test/provider-contract.test.ts runs the contract once per target.
 *
 * Some cases need what only a cloud has (a quota, a catalogue of machine types): a target declares them. Checks and
 * cases only one provider has are the target's own, and their names say so.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../../workers/workflow-bundle';
import { createStoppedGitspace, reconcileNow, registerInfrastructure, runAction } from './emulated-machine';
import { startGitServer, type GitServer } from './git-server';
import { valueOf } from './prometheus-text';
import { GATEWAY_ADMIN_TOKEN, TEST_INSTALLATION_ID, startTestStack, type TestStack } from './stack';

/** A machine as the cloud (or the host) holds it, seen from outside the provider. */
export interface SeenMachine {
  /** Unique to this machine: a second machine made for the same gitspace has another. */
  id: string;
  /** `running`, `stopped`, or the cloud's own word for anything else. */
  state: string;
  labels: Record<string, string>;
}

/** A disk (volume) as the cloud holds it. */
export interface SeenDisk {
  id: string;
  /** Where the cloud reports sizes. */
  sizeGb?: number;
  /** The ids of the machines it is attached to. */
  attachedTo: string[];
}

/** The cloud of a target, looked at directly: what a test asserts on, never what the provider says of itself. */
export interface CloudView {
  /** The gitspace's machines that exist (not terminated, not deleted). */
  machinesOf(gitspaceId: string): Promise<SeenMachine[]>;
  /** Every disk of the gitspace (GCP: its boot disk too). */
  disksOf(gitspaceId: string): Promise<SeenDisk[]>;
  /** The gitspace's data disks: what survives stop and start. */
  dataDisksOf(gitspaceId: string): Promise<SeenDisk[]>;
  /** The labels (tags) the machine of a gitspace carries. */
  labelsFor(gitspaceId: string): Record<string, string>;
  /** How many create requests (RunInstances, insert) for the gitspace reached the cloud; absent where no API is. */
  createRequestsFor?(gitspaceId: string): number;
  /** Makes a machine with a data disk straight in the cloud, as a crashed or foreign control plane leaves one. */
  plantMachine(gitspaceId: string, installationId: string): Promise<void>;
  /** How many disks a planted machine has, and whether its data disk outlives it (left for a later pass). */
  planted: { disks: number; dataDiskOutlivesMachine: boolean };
  /** Waits until the cloud has finished what it was asked (GCP's operations); at once elsewhere. */
  settle(): Promise<void>;
}

/** A target's running environment: the stack with a runner for the target's infrastructure, and its cloud. */
export interface ContractEnvironment {
  stack: TestStack;
  infrastructureId: string;
  /** The catalogue machine gitspaces run on, and the data disk size it gives where the cloud reports sizes. */
  machine: { name: string; diskSizeGb?: number };
  cloud: CloudView;
  /** Readies a gitspace's machine before its start (an emulator's machine needs its agent served). */
  serve(gitspaceId: string): Promise<{ workspaceDir: string }>;
  /** Where the gateway's route to a running gitspace must lead: its agent, never a machine's fake address. */
  routeTargetOf(gitspaceId: string): Promise<string | undefined>;
  close(): Promise<void>;
}

/** What a case gets besides the environment. */
export interface ContractContext<E extends ContractEnvironment = ContractEnvironment> {
  env: E;
  git: GitServer;
  /** Creates a gitspace without starting it, on the target's infrastructure; returns its id. */
  stoppedGitspace(name: string, options?: { machine?: string; repository?: string }): Promise<string>;
}

/** One provider on its emulator: one entry of the contract suite. */
export interface ContractTarget<E extends ContractEnvironment = ContractEnvironment> {
  /** In test names: `aws on moto`. */
  name: string;
  /** How long reconciliation keeps an orphan before deleting it, in the target's control plane. */
  orphanGraceSeconds: number;
  start(setup: { bundle: WorkflowBundleWithSourceMap }): Promise<E>;
  /** A cloud that has quotas: makes the next create fail with one, and what the user then reads. */
  quotaExceeded?: { inject(env: E): void; message: string | RegExp };
  /** A cloud with a catalogue of machine types: a catalogue machine of a type it does not have, and the message. */
  unknownMachineType?: { machine: string; message: string };
  /** Checks only this provider makes, within the shared cases. */
  specifics?: {
    /** On the machine and data disk of a gitspace just started for the first time. */
    firstStart?(env: E, gitspaceId: string, machine: SeenMachine, disk: SeenDisk): Promise<void>;
    /** Once the gitspace is deleted. */
    deleted?(env: E, gitspaceId: string): Promise<void>;
  };
  /** Cases only this provider has; their titles say which provider. */
  ownCases?: { title: string; run(context: ContractContext<E>): Promise<void> }[];
}

/** The orphans the reconciliation case plants: unknown to the control plane, and of another installation. */
const ORPHAN = 'gs-unknown-orphan';
const FOREIGN = 'gs-of-another-installation';

let bundling: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Registers the contract's cases for one target (inside a describe block). */
export function providerContract<E extends ContractEnvironment>(target: ContractTarget<E>): void {
  let git: GitServer;
  let env: E;

  beforeAll(async () => {
    // One bundle for every target of the file.
    const bundle = await (bundling ??= bundleLifecycleWorkflows());
    git = await startGitServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    env = await target.start({ bundle });
  });
  afterAll(async () => {
    await env?.close();
    await git?.stop();
  });

  const context = (): ContractContext<E> => ({
    env,
    git,
    stoppedGitspace: (name, { machine = env.machine.name, repository = 'hello' } = {}) =>
      createStoppedGitspace(env.stack, {
        name,
        repositoryUrl: git.urlOf(repository),
        infrastructureId: env.infrastructureId,
        machineId: `${env.infrastructureId}-${machine}`,
      }),
  });
  const runningGitspace = async (name: string) => {
    const id = await context().stoppedGitspace(name);
    const { workspaceDir } = await env.serve(id);
    const running = await runAction(env.stack, id, 'start');
    expect(running).toMatchObject({ state: 'running' });
    return { id, workspaceDir, running };
  };
  const statesOf = async (gitspaceId: string) => (await env.cloud.machinesOf(gitspaceId)).map((m) => m.state);
  /** The same machines, in the same states: [id, state] pairs. */
  const machinesAndStates = async (gitspaceId: string) =>
    (await env.cloud.machinesOf(gitspaceId)).map((m) => [m.id, m.state]);
  const expectCreateRequests = (gitspaceId: string, count: number) => {
    // Where no API counts them (local), the machine's unchanged id says the same: no second machine was made.
    if (env.cloud.createRequestsFor) expect(env.cloud.createRequestsFor(gitspaceId)).toBe(count);
  };

  it('runs a gitspace on a labelled machine, keeps its data disk across stop/start, and removes both on delete', async () => {
    const { cloud, stack } = env;
    const { id, workspaceDir, running } = await runningGitspace('lifecycle');
    expect(running.url).toBe(`${stack.gatewayUrl}/gitspaces/${id}/`);
    expect(await readFile(path.join(workspaceDir, 'README.md'), 'utf8')).toBe('# hello\n');

    const [machine, ...others] = await cloud.machinesOf(id);
    expect(others).toHaveLength(0);
    expect(machine).toMatchObject({ state: 'running' });
    expect(machine?.labels).toEqual(cloud.labelsFor(id));
    const [disk, ...moreDisks] = await cloud.dataDisksOf(id);
    expect(moreDisks).toHaveLength(0);
    expect(disk).toMatchObject({
      attachedTo: [machine?.id],
      ...(env.machine.diskSizeGb !== undefined ? { sizeGb: env.machine.diskSizeGb } : {}),
    });
    await target.specifics?.firstStart?.(env, id, machine!, disk!);
    // The route goes to the gitspace's agent, never to a machine's fake private address.
    const routes = (await (
      await fetch(`${stack.gatewayAdminUrl}/routes`, { headers: { authorization: `Bearer ${GATEWAY_ADMIN_TOKEN}` } })
    ).json()) as { routes: { gitspaceId: string; target: string }[] };
    expect(routes.routes.find((r) => r.gitspaceId === id)?.target).toBe(await env.routeTargetOf(id));

    expect((await runAction(stack, id, 'stop')).state).toBe('stopped');
    expect(await machinesAndStates(id)).toEqual([[machine?.id, 'stopped']]);
    expect((await cloud.dataDisksOf(id)).map((d) => d.id)).toEqual([disk?.id]);

    expect((await runAction(stack, id, 'start')).state).toBe('running');
    expect(await machinesAndStates(id)).toEqual([[machine?.id, 'running']]);
    expect((await cloud.dataDisksOf(id)).map((d) => [d.id, d.attachedTo])).toEqual([[disk?.id, [machine?.id]]]);
    expectCreateRequests(id, 1);

    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
    expect(await cloud.machinesOf(id)).toHaveLength(0);
    expect(await cloud.disksOf(id)).toHaveLength(0);
    await target.specifics?.deleted?.(env, id);
  });

  it('retries a failed start on the machine it already made, never a second one', async () => {
    const { stack } = env;
    const id = await context().stoppedGitspace('retried', { repository: 'not-yet' });
    await env.serve(id);
    const failed = await runAction(stack, id, 'start');
    expect(failed).toMatchObject({
      state: 'error',
      lastError: { action: 'start', step: 'prepareWorkspace', cause: 'CloneFailedError' },
    });
    // The failed start stopped its machine and kept it (and its disk) for the retry.
    const [made, ...others] = await env.cloud.machinesOf(id);
    expect(others).toHaveLength(0);
    expect(made?.state).toBe('stopped');

    await git.createRepository('not-yet', { 'README.md': 'now here\n' });
    expect((await runAction(stack, id, 'retry')).state).toBe('running');
    expect(await machinesAndStates(id)).toEqual([[made?.id, 'running']]);
    expectCreateRequests(id, 1);

    expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
  });

  const quota = target.quotaExceeded;
  if (quota) {
    it('fails a start fast on a quota error, with its message, and leaves no machine', async () => {
      const id = await context().stoppedGitspace('over-quota');
      quota.inject(env);
      const began = Date.now();
      const failed = await runAction(env.stack, id, 'start', 20_000);
      expect(Date.now() - began).toBeLessThan(20_000);
      expect(failed).toMatchObject({
        state: 'error',
        lastError: { action: 'start', step: 'ensureMachine', cause: 'QuotaExceededError' },
      });
      expect(failed.lastError.message).toMatch(quota.message);
      // Non-retryable: one attempt only.
      expectCreateRequests(id, 1);
      expect(await env.cloud.machinesOf(id)).toHaveLength(0);
    });
  }

  const unknownType = target.unknownMachineType;
  if (unknownType) {
    it('fails a start on a machine type the cloud does not have, naming it, and leaves no machine', async () => {
      const id = await context().stoppedGitspace('bad-type', { machine: unknownType.machine });
      const failed = await runAction(env.stack, id, 'start');
      expect(failed).toMatchObject({
        state: 'error',
        lastError: { action: 'start', step: 'ensureMachine', cause: 'InvalidMachineSpecError' },
      });
      expect(failed.lastError.message).toContain(unknownType.message);
      expect(await env.cloud.machinesOf(id)).toHaveLength(0);
      expect(await env.cloud.disksOf(id)).toHaveLength(0);
    });
  }

  it('reconciles orphans: stops an unknown one, deletes it after the grace period, deletes leftovers of deleted gitspaces, and leaves live machines alone', async () => {
    const { cloud, stack, infrastructureId } = env;
    const { disks: plantedDisks, dataDiskOutlivesMachine } = cloud.planted;
    const before = await metricsText(stack);
    const live = await runningGitspace('live');
    const gone = await context().stoppedGitspace('gone');
    expect((await runAction(stack, gone, 'delete')).state).toBe('deleted');
    await cloud.plantMachine(gone, TEST_INSTALLATION_ID);
    await cloud.plantMachine(ORPHAN, TEST_INSTALLATION_ID);
    await cloud.plantMachine(FOREIGN, 'another-installation');
    await cloud.settle();
    const results: { stopped: string[]; deleted: string[] }[] = [];
    const reconcile = async (name: string) => {
      const result = await reconcileNow(stack, infrastructureId, name);
      results.push(result);
      await cloud.settle();
      return result;
    };
    const attachmentsOf = async (gitspaceId: string) => (await cloud.disksOf(gitspaceId)).map((d) => d.attachedTo);

    expect(await reconcile('first')).toMatchObject({
      stopped: [ORPHAN],
      deleted: [gone],
      awaitingGrace: [ORPHAN],
      failed: [],
    });
    expect(await statesOf(ORPHAN)).toEqual(['stopped']);
    expect(await cloud.disksOf(ORPHAN)).toHaveLength(plantedDisks);
    expect(await cloud.machinesOf(gone)).toHaveLength(0);
    // A data disk that outlives its machine was still attached when the machine went: it is left for the next pass.
    expect(await attachmentsOf(gone)).toEqual(dataDiskOutlivesMachine ? [[]] : []);
    expect(await statesOf(FOREIGN)).toEqual(['running']);
    expect(await statesOf(live.id)).toEqual(['running']);
    expect((await stack.api('GET', `/api/v1/gitspaces/${live.id}`)).body.state).toBe('running');
    const goneEvents = (await stack.api('GET', `/api/v1/gitspaces/${gone}/events`)).body.items;
    expect(goneEvents.at(-1)).toMatchObject({
      type: 'reconcile',
      message: 'reconciliation deleted a leftover machine and its disks (the gitspace is deleted)',
    });

    // Inside the grace period the orphan is kept (stopped), with its disks: they may be someone's work. The deleted
    // gitspace's detached disk goes now.
    expect(await reconcile('again')).toMatchObject({
      stopped: [],
      deleted: dataDiskOutlivesMachine ? [gone] : [],
      awaitingGrace: [ORPHAN],
    });
    expect(await cloud.disksOf(gone)).toHaveLength(0);
    expect(await statesOf(ORPHAN)).toEqual(['stopped']);
    expect(await cloud.disksOf(ORPHAN)).toHaveLength(plantedDisks);

    await new Promise((resolve) => setTimeout(resolve, target.orphanGraceSeconds * 1000 + 200));
    expect(await reconcile('later')).toMatchObject({ stopped: [], deleted: [ORPHAN], awaitingGrace: [] });
    expect(await cloud.machinesOf(ORPHAN)).toHaveLength(0);
    if (dataDiskOutlivesMachine) {
      expect(await attachmentsOf(ORPHAN)).toEqual([[]]);
      expect(await reconcile('last')).toMatchObject({ deleted: [ORPHAN] });
    }
    expect(await cloud.disksOf(ORPHAN)).toHaveLength(0);
    expect(await statesOf(FOREIGN)).toEqual(['running']);
    expect(await statesOf(live.id)).toEqual(['running']);

    // What it did, for an operator: Prometheus text with the admin token, refused without it. The counters are
    // compared with what they said before the case (a control plane reconciles what it knows when it starts).
    const text = await metricsText(stack);
    const infrastructure = { infrastructure: infrastructureId };
    const counted = (scrape: string, name: string, labels: Record<string, string> = {}) =>
      valueOf(scrape, name, { ...infrastructure, ...labels }) ?? 0;
    const grown = (name: string, labels?: Record<string, string>) =>
      counted(text, name, labels) - counted(before, name, labels);
    expect(grown('gitspaces_reconcile_runs_total')).toBe(results.length);
    expect(grown('gitspaces_reconcile_machines_total', { action: 'stopped' })).toBe(1);
    expect(grown('gitspaces_reconcile_machines_total', { action: 'deleted' })).toBe(
      results.reduce((sum, result) => sum + result.deleted.length, 0),
    );
    expect(text).toContain(`gitspaces_gitspaces{infrastructure="${infrastructureId}",state="running"} 1`);
    expect(text).toMatch(
      new RegExp(`gitspaces_reconcile_last_run_timestamp_seconds\\{infrastructure="${infrastructureId}"\\} \\d+`),
    );
    expect((await fetch(`${stack.controlPlane.url}/metrics`)).status).toBe(401);

    expect((await runAction(stack, live.id, 'delete')).state).toBe('deleted');
  });

  for (const own of target.ownCases ?? []) it(own.title, () => own.run(context()));
}

/** GET /metrics with the admin token, checked to be Prometheus text. */
async function metricsText(stack: TestStack): Promise<string> {
  const metrics = await fetch(`${stack.controlPlane.url}/metrics`, {
    headers: { authorization: `Bearer ${stack.controlPlane.adminToken}` },
  });
  expect(metrics.status).toBe(200);
  expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  return metrics.text();
}

/**
 * Builds an environment from parts that each need closing: `closeLater` records how, and `close()` closes them in
 * reverse order. When building fails, what was built so far is closed at once.
 */
export async function assemble<E extends Omit<ContractEnvironment, 'close'>>(
  build: (closeLater: (close: () => unknown) => void) => Promise<E>,
): Promise<E & { close(): Promise<void> }> {
  const closers: (() => unknown)[] = [];
  const close = async () => {
    for (const closer of closers.splice(0).reverse()) await closer();
  };
  try {
    return { ...(await build((closer) => closers.push(closer))), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The stack of a cloud target, closed with its environment: the target's cloud infrastructure and its catalogue
 * machines registered through the REST API, as an administrator does, and no runner yet (the target starts one
 * pointed at its emulator).
 */
export async function startCloudStack(
  { bundle, orphanGraceSeconds }: { bundle: WorkflowBundleWithSourceMap; orphanGraceSeconds: number },
  closeLater: (close: () => unknown) => void,
  infrastructure: Parameters<typeof registerInfrastructure>[1],
  machines: Parameters<typeof registerInfrastructure>[2],
): Promise<TestStack> {
  const stack = await startTestStack({
    workflowBundle: bundle,
    runner: false,
    runnerPickupTimeoutSeconds: 20,
    orphanGraceSeconds,
  });
  closeLater(() => stack.stop());
  await registerInfrastructure(stack, infrastructure, machines);
  return stack;
}
