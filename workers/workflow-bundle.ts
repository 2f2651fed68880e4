import { createHash } from 'node:crypto';
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { PACKAGE_VERSION } from '../common/package-version';
import { FAILURE_CONVERTER_PATH } from '../common/payload-codec';

/**
 * Bundles the workflow code once per process; workers are then created from the bundle. Workflow code converts its
 * own failures with the bundle's failure converter, not the worker's: it is the one every client and worker uses.
 * `webpackConfigHook` is for tests that bundle a changed copy of the workflows (test/support/workflow-variant.ts).
 */
export function bundleLifecycleWorkflows(
  options: Pick<BundleOptions, 'webpackConfigHook'> = {},
): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: quietBundlerLogger,
    ...options,
  });
}

/**
 * The build id of a workflow bundle: the package version and the first 12 hex digits of the SHA-256 of the bundled
 * code, so changed workflow code (ours, a helper it imports, the SDK's) gets a new build id by itself, and the same
 * code gets the same one on every replica and restart. The bundle holds no absolute paths, so the checkout's place
 * does not matter.
 */
export function workflowBundleBuildId(bundle: Pick<WorkflowBundleWithSourceMap, 'code'>): string {
  const digest = createHash('sha256').update(bundle.code).digest('hex').slice(0, 12);
  return `${PACKAGE_VERSION}-${digest}`;
}

const noop = () => undefined;
/** The bundler reports each webpack step at info level; only its warnings and errors matter to us. */
const quietBundlerLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: (message: string) => process.stderr.write(`workflow bundle: ${message}\n`),
  error: (message: string) => process.stderr.write(`workflow bundle: ${message}\n`),
};
