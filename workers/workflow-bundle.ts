import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../common/payload-codec';

/**
 * Bundles the workflow code once per process; workers are then created from the bundle. Workflow code converts its
 * own failures with the bundle's failure converter, not the worker's: it is the one every client and worker uses.
 */
export function bundleLifecycleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: quietBundlerLogger,
  });
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
