import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { format } from 'prettier';
import { CONTROL_PLANE_TASK_QUEUE, autoStopWorkflowId, lifecycleWorkflowId } from '../contracts/lifecycle';
import { createLogger, silentLogger } from '../common/logger';
import { PAYLOAD_KEYS_FILE } from '../common/payload-codec';
import { findOrBuildTemporalCli } from '../engine/temporal-cli';
import { createLocalProvider, localMachinesRoot } from '../providers/local/provider';
import { controlPlaneVersion } from '../workers/control-plane-worker';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import { startGitHttpServer } from '../test/support/git-http-server';
import { startTestStack, waitForGitspace, type TestStack } from '../test/support/stack';
import {
  GOLDEN_DIR,
  GOLDEN_KEYS_FILE,
  GOLDEN_PATHS,
  type GoldenHistory,
  type GoldenPath,
} from '../test/support/golden';

/**
 * `npm run golden:record`: drives every workflow path once on a throwaway stack (real dev server, control plane,
 * runner, gateway and git server on loopback) and writes each closed run's history to test/golden/<path>.json, as the
 * server has it: payloads encrypted. The stack's key ring, generated for this run only, is written beside them
 * (test/golden/payload-keys), so the replay test decodes them with the project's own data converter.
 *
 * The histories are recorded from the committed code (HEAD, exported to a temporary folder), not from uncommitted
 * changes in the working tree: a golden history stands for what released code wrote. `--here` records from the working
 * tree instead (to try a change out); `--out DIR` writes elsewhere. `--paths a,b` records only those paths, with the
 * key ring already in the output folder, so the histories recorded before (which prove the patches) stay as they are.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, here: { type: 'boolean' }, paths: { type: 'string' } },
  });
  const out = path.resolve(values.out ?? GOLDEN_DIR);
  const only = values.paths?.split(',').map((name) => name.trim());
  const unknown = only?.filter((name) => !(GOLDEN_PATHS as readonly string[]).includes(name)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown golden path(s) ${unknown.join(', ')}: ${GOLDEN_PATHS.join(', ')}`);
  const paths = GOLDEN_PATHS.filter((name) => !only || only.includes(name));
  const logger = createLogger('golden');
  process.env.TEMPORAL_CLI_PATH = await findOrBuildTemporalCli({
    explicitPath: process.env.TEMPORAL_CLI_PATH,
    searchPath: process.env.PATH,
    logger,
  });
  if (!values.here) return recordFromHead(out, values.paths);
  const bundle = await bundleLifecycleWorkflows();
  const git = await startGitHttpServer();
  const keptKeys = only ? await readFile(path.join(out, GOLDEN_KEYS_FILE), 'utf8') : undefined;
  const stack = await startTestStack({
    workflowBundle: bundle,
    // The auto-stop path warns a gitspace after two seconds of idling and stops it a second later.
    autoStop: { warningSeconds: 1, minSeconds: 1 },
    ...(keptKeys ? { payloadKeysText: keptKeys } : {}),
  });
  try {
    const recorded = await drive(stack, git, paths);
    await mkdir(out, { recursive: true });
    const buildId = controlPlaneVersion(bundle).buildId;
    for (const name of paths) {
      const handle = recorded[name]!;
      const description = await handle.describe();
      const golden: GoldenHistory = {
        path: name,
        workflowType: description.type,
        workflowId: handle.workflowId,
        status: description.status.name,
        buildId,
        history: JSON.parse(historyToJSON(await handle.fetchHistory())),
      };
      const text = await format(JSON.stringify(golden), { parser: 'json', printWidth: 120 });
      await writeFile(path.join(out, `${name}.json`), text);
      logger.info('recorded', { path: name, workflowType: golden.workflowType, status: golden.status });
    }
    if (!keptKeys) {
      const keys = await readFile(path.join(stack.dataDir, PAYLOAD_KEYS_FILE), 'utf8');
      await writeFile(path.join(out, GOLDEN_KEYS_FILE), `${keys.trim()}\n`);
    }
    process.stdout.write(`golden histories of build ${buildId} written to ${out}\n`);
  } finally {
    await stack.stop();
    await git.stop();
  }
}

/** Exports HEAD to a temporary folder (with this checkout's node_modules) and records there, writing into `out`. */
async function recordFromHead(out: string, paths: string | undefined): Promise<void> {
  const root = path.resolve(__dirname, '..');
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-golden-'));
  try {
    execFileSync('sh', ['-c', `git archive HEAD | tar -x -C '${dir}'`], { cwd: root, stdio: 'inherit' });
    await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    process.stdout.write(`recording from HEAD ${head.slice(0, 12)} (uncommitted changes are not in it)\n`);
    const script = path.join(dir, 'scripts', 'record-golden-histories.ts');
    const args = ['--here', '--out', out, ...(paths ? ['--paths', paths] : [])];
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), script, ...args], {
      cwd: dir,
      stdio: 'inherit',
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`recording from HEAD ${head.slice(0, 12)} failed (exit ${code})`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs each of `paths` and returns the handle of the run that took it (pinned to its run id). */
async function drive(
  stack: TestStack,
  git: Awaited<ReturnType<typeof startGitHttpServer>>,
  paths: readonly GoldenPath[],
): Promise<Partial<Record<GoldenPath, WorkflowHandle>>> {
  const { client } = stack.controlPlane;
  await git.createRepository('hello', { 'README.md': '# hello\n' });
  await git.createRepository('slow', {
    '.devcontainer/devcontainer.json': '{ "postCreateCommand": "sleep 30" }\n',
  });
  const run = (gitspaceId: string, runId: string) => client.workflow.getHandle(lifecycleWorkflowId(gitspaceId), runId);
  const closed = async (handle: WorkflowHandle) => {
    await handle.result().catch(() => undefined);
    return handle;
  };
  const create = async (name: string, repository: string, autoStop?: Record<string, number>) => {
    const response = await stack.api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: repository },
      infrastructureId: 'local',
      machineId: 'local-default',
      ...(autoStop ? { autoStop } : {}),
    });
    if (response.status !== 201) throw new Error(`creating ${name}: ${JSON.stringify(response.body)}`);
    return { id: response.body.gitspace.id as string, runId: response.body.operation.runId as string };
  };
  const act = async (id: string, action: 'stop' | 'retry') => {
    const response = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action });
    if (response.status !== 202) throw new Error(`${action} ${id}: ${JSON.stringify(response.body)}`);
    return response.body.operation.runId as string;
  };
  const expectState = async (id: string, state: string) => {
    const seen = await waitForGitspace(stack, id, (g) => g.state === state || g.state === 'error', 120_000);
    if (seen.state !== state) throw new Error(`gitspace ${id} is ${seen.state}, not ${state}: ${JSON.stringify(seen)}`);
  };

  const recorded: Partial<Record<GoldenPath, WorkflowHandle>> = {};
  // A start that arms the auto-stop, and the watcher that warns, then stops the gitspace once it idled for 3 s.
  if (paths.includes('start-armed') || paths.includes('auto-stop')) {
    const armed = await create('armed', git.urlOf('hello'), { idleTimeoutSeconds: 3 });
    await expectState(armed.id, 'running');
    recorded['start-armed'] = await closed(run(armed.id, armed.runId));
    await expectState(armed.id, 'stopped');
    const watcher = client.workflow.getHandle(autoStopWorkflowId(armed.id));
    recorded['auto-stop'] = await closed(
      client.workflow.getHandle(watcher.workflowId, (await watcher.describe()).runId),
    );
  }
  // A start whose steps were recorded by a local activity.
  if (paths.includes('start-local-steps')) {
    const local = await create('local-steps', git.urlOf('hello'));
    await expectState(local.id, 'running');
    recorded['start-local-steps'] = await closed(run(local.id, local.runId));
  }
  if (!paths.some((name) => !(name in recorded))) return recorded;

  // Start succeeded, then stop and delete of the same gitspace.
  const ok = await create('golden', git.urlOf('hello'));
  await expectState(ok.id, 'running');
  const startSucceeded = await closed(run(ok.id, ok.runId));
  const stop = await closed(run(ok.id, await act(ok.id, 'stop')));
  await expectState(ok.id, 'stopped');
  const deleted = await stack.api('DELETE', `/api/v1/gitspaces/${ok.id}`);
  const del = await closed(run(ok.id, deleted.body.operation.runId));
  await expectState(ok.id, 'deleted');

  // Start compensated: the repository is not there, so the workspace step fails and the machine is stopped again.
  const broken = await create('broken', git.urlOf('later'));
  await expectState(broken.id, 'error');
  const startCompensated = await closed(run(broken.id, broken.runId));
  // Retry: the repository exists now, and the failed start runs again.
  await git.createRepository('later', { 'README.md': '# later\n' });
  const retry = await closed(run(broken.id, await act(broken.id, 'retry')));
  await expectState(broken.id, 'running');

  // Start cancelled by a stop: the workspace step runs a slow setup command when the stop arrives.
  const slow = await create('slow', git.urlOf('slow'));
  await waitForGitspace(stack, slow.id, (g) => g.operation?.step === 'prepareWorkspace', 120_000);
  await act(slow.id, 'stop');
  const startCancelled = await closed(run(slow.id, slow.runId));
  await expectState(slow.id, 'stopped');

  // Reconcile with one repair: the running gitspace's machine stopped behind the control plane's back.
  const machines = createLocalProvider({ rootDir: localMachinesRoot(stack.dataDir), logger: silentLogger });
  await machines.stop(broken.id, { idempotencyKey: 'golden-reconcile', signal: AbortSignal.timeout(30_000) });
  const reconcile = await client.workflow.start('reconcileInfrastructure', {
    taskQueue: CONTROL_PLANE_TASK_QUEUE,
    workflowId: 'reconcile-local-golden',
    args: [{ infrastructureId: 'local' }],
  });
  await reconcile.result();

  return {
    ...recorded,
    'start-succeeded': startSucceeded,
    'start-compensated': startCompensated,
    'start-cancelled': startCancelled,
    stop,
    delete: del,
    reconcile: await closed(client.workflow.getHandle(reconcile.workflowId, reconcile.firstExecutionRunId)),
    retry,
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
