import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { EncryptionCodec, PayloadKeyRing, payloadDataConverter } from '../common/payload-codec';
import { installWorkerRuntime } from '../workers/runtime';
import { bundleLifecycleWorkflows } from '../workers/workflow-bundle';
import {
  GOLDEN_PATHS,
  readGoldenHistory,
  readGoldenKeyRing,
  type GoldenHistory,
  type GoldenPath,
} from './support/golden';
import {
  START_ARMING_UNGUARDED,
  START_WITH_PATCHED_PAUSE,
  START_WITH_PAUSE,
  STEP_RECORDING_UNGUARDED,
  bundleWorkflowVariant,
} from './support/workflow-variant';

/** How each path's run ended, and which workflow took it. */
const EXPECTED: Record<GoldenPath, { workflowType: string; status: string }> = {
  'start-succeeded': { workflowType: 'startGitspace', status: 'COMPLETED' },
  'start-compensated': { workflowType: 'startGitspace', status: 'FAILED' },
  'start-cancelled': { workflowType: 'startGitspace', status: 'CANCELLED' },
  stop: { workflowType: 'stopGitspace', status: 'COMPLETED' },
  delete: { workflowType: 'deleteGitspace', status: 'COMPLETED' },
  reconcile: { workflowType: 'reconcileInfrastructure', status: 'COMPLETED' },
  retry: { workflowType: 'startGitspace', status: 'COMPLETED' },
  'start-armed': { workflowType: 'startGitspace', status: 'COMPLETED' },
  'auto-stop': { workflowType: 'autoStopGitspace', status: 'COMPLETED' },
  'start-local-steps': { workflowType: 'startGitspace', status: 'COMPLETED' },
};
const START_PATHS = GOLDEN_PATHS.filter((name) => EXPECTED[name].workflowType === 'startGitspace');

/**
 * The golden histories under test/golden (README: golden histories), one closed run per workflow path, recorded by
 * `npm run golden:record`, replayed on the current workflow code with the project's data converter (the payload codec
 * with the recording's test-only key ring, and the failure converter). A change to the workflows that would break a
 * run recorded before it fails here, unless it is guarded with `patched()`.
 */
describe('golden workflow histories', () => {
  let goldens: GoldenHistory[];
  let keyRing: PayloadKeyRing;
  let current: WorkflowBundleWithSourceMap;

  beforeAll(async () => {
    installWorkerRuntime();
    goldens = await Promise.all(GOLDEN_PATHS.map((name) => readGoldenHistory(name)));
    keyRing = await readGoldenKeyRing();
    current = await bundleLifecycleWorkflows();
  });

  /** Replays every golden history on `workflowBundle`; the error of each (undefined when it replayed). */
  const replay = async (workflowBundle: WorkflowBundleWithSourceMap, ring = keyRing) => {
    const errors: Partial<Record<GoldenPath, Error>> = {};
    const histories = goldens.map((golden) => ({
      workflowId: golden.workflowId,
      history: historyFromJSON(golden.history),
    }));
    const dataConverter = payloadDataConverter(new EncryptionCodec(ring));
    // One at a time, in the order given: a start, stop and delete of one gitspace share their workflow id.
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle, dataConverter }, histories)) {
      if (result.error) errors[goldens[replayed]!.path] = result.error;
      replayed++;
    }
    expect(replayed).toBe(goldens.length);
    return errors;
  };

  it('holds one closed run for every workflow path', () => {
    expect(goldens.map(({ path, workflowType, status }) => ({ path, workflowType, status }))).toEqual(
      GOLDEN_PATHS.map((path) => ({ path, ...EXPECTED[path] })),
    );
  });

  it('replays every golden history on the current workflow code', async () => {
    expect(await replay(current)).toEqual({});
  });

  it('fails a change to the start workflow that is not guarded by patched()', async () => {
    const errors = await replay(await bundleWorkflowVariant([START_WITH_PAUSE]));
    expect(Object.keys(errors).sort()).toEqual([...START_PATHS].sort());
    for (const name of START_PATHS) expect(errors[name]?.name).toBe('DeterminismViolationError');
  });

  it('fails the auto-stop arming without its patched() guard on the starts that completed before it', async () => {
    const errors = await replay(await bundleWorkflowVariant([START_ARMING_UNGUARDED]));
    // The starts recorded before the arming never sent it; the armed start's marker needs the patched() call too.
    expect(Object.keys(errors).sort()).toEqual(['retry', 'start-armed', 'start-local-steps', 'start-succeeded']);
    for (const error of Object.values(errors)) expect(error?.name).toBe('DeterminismViolationError');
  });

  it('fails the local step recording without its patched() guard on every start, stop and delete before it', async () => {
    const errors = await replay(await bundleWorkflowVariant([STEP_RECORDING_UNGUARDED]));
    const recordedBefore = GOLDEN_PATHS.filter(
      (name) => /^(start|stop|delete)Gitspace$/.test(EXPECTED[name].workflowType) && name !== 'start-local-steps',
    );
    expect(Object.keys(errors).sort()).toEqual([...recordedBefore].sort());
    for (const error of Object.values(errors)) expect(error?.name).toBe('DeterminismViolationError');
  });

  it('passes the same change guarded by patched()', async () => {
    expect(await replay(await bundleWorkflowVariant([START_WITH_PATCHED_PAUSE]))).toEqual({});
  });

  it('replays through the payload codec: without the recording key ring, no history replays', async () => {
    const errors = await replay(current, PayloadKeyRing.parse(PayloadKeyRing.generateText()));
    expect(Object.keys(errors)).toHaveLength(goldens.length);
    // The codec refuses the payloads; the failure converter seals even that message, so only its kind shows.
    for (const error of Object.values(errors)) expect(error?.name).toBe('ReplayError');
  });
});
