import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleLifecycleWorkflows } from '../../workers/workflow-bundle';

export interface SourceChange {
  /** A workflow source file, relative to the repository root (e.g. `workflows/gitspace-lifecycle.ts`). */
  file: string;
  replacements: { find: string; replace: string }[];
  /** Appended to the file (imports are hoisted, so this is where a change's imports go). */
  append?: string;
}

/**
 * The workflow bundle built from the current workflow code with `changes` applied at bundle time: a "next version" of
 * the workflows without a copy of the tree. The real files are not touched.
 */
export function bundleWorkflowVariant(changes: SourceChange[]): Promise<WorkflowBundleWithSourceMap> {
  const root = path.resolve(__dirname, '../..');
  return bundleLifecycleWorkflows({
    webpackConfigHook: (config) => {
      const rules = (config.module ??= {}).rules ?? [];
      for (const change of changes) {
        rules.push({
          test: path.join(root, change.file),
          enforce: 'pre',
          use: [
            {
              loader: require.resolve('./source-rewrite-loader.js'),
              options: { replacements: change.replacements, append: change.append ?? '' },
            },
          ],
        });
      }
      config.module.rules = rules;
      return config;
    },
  });
}

/** The line of `startGitspace` after which the changes below add a step. */
const AFTER_BEGIN = "const run = await begin(gitspaceId, 'start', actor);";

/**
 * A changed start workflow, as a next release might bring: a one-second pause (a durable timer) right after the
 * operation began. Its command sequence differs from every recorded start history, so replaying one fails with a
 * non-determinism error; its runs are told apart by their TimerStarted event.
 */
export const START_WITH_PAUSE: SourceChange = {
  file: 'workflows/gitspace-lifecycle.ts',
  replacements: [{ find: AFTER_BEGIN, replace: `${AFTER_BEGIN}\n  await variantSleep('1 second');` }],
  append: "import { sleep as variantSleep } from '@temporalio/workflow';",
};

/** The same change guarded by `patched()`: a run started on older code replays without it, new runs take it. */
export const START_WITH_PATCHED_PAUSE: SourceChange = {
  file: 'workflows/gitspace-lifecycle.ts',
  replacements: [
    {
      find: AFTER_BEGIN,
      replace: `${AFTER_BEGIN}\n  if (variantPatched('pause-after-begin')) await variantSleep('1 second');`,
    },
  ],
  append: "import { patched as variantPatched, sleep as variantSleep } from '@temporalio/workflow';",
};

/**
 * The auto-stop arming of `startGitspace` without its `patched()` guard: a start recorded before the arming replays its
 * completion into a command it never sent.
 */
export const START_ARMING_UNGUARDED: SourceChange = {
  file: 'workflows/gitspace-lifecycle.ts',
  replacements: [
    {
      find: 'if (patched(PATCHES.armAutoStop)) await armAutoStop(gitspaceId);',
      replace: 'await armAutoStop(gitspaceId);',
    },
  ],
};

/**
 * Steps recorded by a local activity whatever the history says (the patch still marked, so new runs replay): a start
 * recorded when each step was a queued activity replays into a local activity it never ran.
 */
export const STEP_RECORDING_UNGUARDED: SourceChange = {
  file: 'workflows/gitspace-lifecycle.ts',
  replacements: [
    {
      find: 'patched(PATCHES.recordStepLocally) ? localControlPlane : controlPlane',
      replace: '(patched(PATCHES.recordStepLocally) || true) ? localControlPlane : controlPlane',
    },
  ],
};
