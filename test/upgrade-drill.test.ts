import { temporal } from '@temporalio/proto';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { lifecycleWorkflowId } from '../contracts/lifecycle';
import { payloadDataConverter } from '../common/payload-codec';
import { CONTROL_PLANE_DEPLOYMENT, controlPlaneVersion } from '../workers/control-plane-worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startControlPlaneWorkerVersion, type ControlPlaneWorkerVersion } from './support/control-plane-version';
import { startGitHttpServer, type GitHttpServer } from './support/git-http-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { bundleWorkflowVariant, START_WITH_PAUSE } from './support/workflow-variant';

type History = temporal.api.history.v1.IHistory;
const { WorkerDeploymentVersionStatus, VersioningBehavior } = temporal.api.enums.v1;

/** The build ids of the workers that completed the run's workflow tasks, in order. */
const taskBuildIds = (history: History) =>
  (history.events ?? []).flatMap((e) =>
    e.workflowTaskCompletedEventAttributes ? [e.workflowTaskCompletedEventAttributes.deploymentVersion?.buildId] : [],
  );
const timers = (history: History) => (history.events ?? []).filter((e) => e.timerStartedEventAttributes).length;

/**
 * The upgrade drill of issue 13, on a real dev server: a start runs on version A of the control plane and waits in its
 * workspace step; version B, whose start workflow differs (a pause after the operation began), is deployed and made
 * current; A's run finishes on A, and new runs start on B. Without versioning, B would have to replay A's run, and
 * that fails with a non-determinism error: the failure this drill shows is prevented.
 */
describe('upgrading the control plane with Worker Versioning', () => {
  let bundleA: WorkflowBundleWithSourceMap;
  let bundleB: WorkflowBundleWithSourceMap;
  let git: GitHttpServer;
  let stack: TestStack;
  let versionB: ControlPlaneWorkerVersion | undefined;

  beforeAll(async () => {
    bundleA = await bundleLifecycleWorkflows();
    bundleB = await bundleWorkflowVariant([START_WITH_PAUSE]);
    git = await startGitHttpServer();
    await git.createRepository('hello', { 'README.md': '# hello\n' });
    stack = await startTestStack({ workflowBundle: bundleA });
  });
  afterAll(async () => {
    await versionB?.stop();
    await stack?.stop();
    await git?.stop();
  });

  const create = async (name: string) => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: git.urlOf('hello') },
      infrastructureId: 'local',
      machineId: 'local-default',
    });
    expect(response.status).toBe(201);
    return response.body.gitspace.id as string;
  };
  const deployment = async () =>
    (
      await stack.controlPlane.client.workflowService.describeWorkerDeployment({
        namespace: stack.temporal.connection.namespace,
        deploymentName: CONTROL_PLANE_DEPLOYMENT,
      })
    ).workerDeploymentInfo!;
  const statusOf = async (buildId: string) =>
    (await deployment()).versionSummaries?.find((v) => v.deploymentVersion?.buildId === buildId)?.status;

  it('finishes a start begun on version A on A, while new runs start on version B', async () => {
    const { client, payloadCodec } = stack.controlPlane;
    const dataConverter = payloadDataConverter(payloadCodec);
    const a = controlPlaneVersion(bundleA);
    expect(controlPlaneVersion(bundleB).buildId).not.toBe(a.buildId);
    // The stack's control plane made its own version current when it started.
    expect((await deployment()).routingConfig?.currentDeploymentVersion?.buildId).toBe(a.buildId);

    // A start on version A, held in its workspace step (the clone waits until released).
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let cloning!: () => void;
    const cloneStarted = new Promise<void>((resolve) => (cloning = resolve));
    git.hold = async () => {
      cloning();
      await released;
    };
    const old = await create('old');
    await cloneStarted;
    const oldRun = client.workflow.getHandle(lifecycleWorkflowId(old));
    const midway = await oldRun.fetchHistory();
    expect(taskBuildIds(midway)).not.toHaveLength(0);
    expect(new Set(taskBuildIds(midway))).toEqual(new Set([a.buildId]));

    // What versioning prevents: version B's code cannot continue A's run (nor can an unversioned restart on B).
    await expect(Worker.runReplayHistory({ workflowBundle: bundleB, dataConverter }, midway, old)).rejects.toThrow(
      /nondetermin/i,
    );
    await Worker.runReplayHistory({ workflowBundle: bundleA, dataConverter }, midway, old);

    // Deploy B beside A and make it current, as B's control plane does when it starts.
    versionB = await startControlPlaneWorkerVersion(stack, bundleB);
    const b = versionB.version;
    // It finds A's run open, pinned to A (the drain an operator waits for, told in its log).
    expect(await versionB.makeCurrent()).toEqual({ changed: true, previous: a.buildId, pinnedElsewhere: 1 });
    expect((await deployment()).routingConfig?.currentDeploymentVersion?.buildId).toBe(b.buildId);
    // A has a pinned run open: it drains (an operator sees this in `temporal worker deployment describe`).
    expect(await statusOf(a.buildId)).toBe(WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING);

    // Released, A's run finishes on A: every workflow task of it was completed by A's worker.
    git.hold = undefined;
    release();
    expect((await waitForGitspace(stack, old, (g) => g.state !== 'starting')).state).toBe('running');
    await oldRun.result();
    const oldHistory = await oldRun.fetchHistory();
    expect(taskBuildIds(oldHistory).length).toBeGreaterThan(taskBuildIds(midway).length);
    expect(new Set(taskBuildIds(oldHistory))).toEqual(new Set([a.buildId]));
    expect(timers(oldHistory)).toBe(0);
    const oldInfo = (await oldRun.describe()).raw.workflowExecutionInfo?.versioningInfo;
    expect(oldInfo?.behavior).toBe(VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
    expect(oldInfo?.deploymentVersion?.buildId).toBe(a.buildId);

    // A new start runs B's code on B (its pause is a timer), and so does the next operation of the old gitspace.
    const fresh = await create('new');
    expect((await waitForGitspace(stack, fresh, (g) => g.state !== 'starting' && g.state !== 'stopped')).state).toBe(
      'running',
    );
    const freshRun = client.workflow.getHandle(lifecycleWorkflowId(fresh));
    await freshRun.result();
    const freshHistory = await freshRun.fetchHistory();
    expect(new Set(taskBuildIds(freshHistory))).toEqual(new Set([b.buildId]));
    expect(timers(freshHistory)).toBe(1);
    expect((await freshRun.describe()).raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId).toBe(
      b.buildId,
    );
    expect((await stack.api('POST', `/api/v1/gitspaces/${old}/actions`, { action: 'stop' })).status).toBe(202);
    expect((await waitForGitspace(stack, old, (g) => g.state === 'stopped' || g.state === 'error')).state).toBe(
      'stopped',
    );
    const stopHistory = await client.workflow.getHandle(lifecycleWorkflowId(old)).fetchHistory();
    expect(new Set(taskBuildIds(stopHistory))).toEqual(new Set([b.buildId]));
  });
});
