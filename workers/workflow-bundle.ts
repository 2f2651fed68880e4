import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { codeCacheDir, replaceCacheFile } from '../common/code-cache';
import { PACKAGE_VERSION } from '../common/package-version';
import { FAILURE_CONVERTER_PATH } from '../common/payload-codec';

/**
 * Bundles the workflow code; workers are then created from the bundle. Workflow code converts its own failures with
 * the bundle's failure converter, not the worker's: it is the one every client and worker uses.
 *
 * Without options the bundle comes from the code cache (common/code-cache.ts) when every file webpack read for it is
 * unchanged (checked by content: ~20 ms for ~250 files, against seconds of webpack), so a control plane starts without
 * bundling after its first start or `npm run build`. `webpackConfigHook` is for tests that bundle a changed copy of the
 * workflows (test/support/workflow-variant.ts): those are never cached.
 */
export async function bundleLifecycleWorkflows(
  options: Pick<BundleOptions, 'webpackConfigHook'> & { cacheDir?: string } = {},
): Promise<WorkflowBundleWithSourceMap> {
  if (options.webpackConfigHook) return bundle(options.webpackConfigHook);
  const file = path.join(options.cacheDir ?? codeCacheDir(), 'workflow-bundle.json');
  const cached = await readCachedBundle(file);
  if (cached) return cached;
  const inputs = new Set<string>();
  const fresh = await bundle((config) => ({
    ...config,
    plugins: [
      ...(config.plugins ?? []),
      {
        apply: (compiler) =>
          compiler.hooks.afterEmit.tap('gitspaces-bundle-inputs', (compilation) => {
            for (const input of compilation.fileDependencies) inputs.add(input);
          }),
      },
    ],
  }));
  const digests: Record<string, string> = {};
  for (const input of inputs) {
    const digest = await digestOf(input);
    if (digest) digests[input] = digest;
  }
  const entry: CachedBundle = { key: CACHE_KEY, inputs: digests, code: fresh.code, sourceMap: fresh.sourceMap };
  replaceCacheFile(file, JSON.stringify(entry));
  return fresh;
}

function bundle(webpackConfigHook?: BundleOptions['webpackConfigHook']): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: quietBundlerLogger,
    ...(webpackConfigHook ? { webpackConfigHook } : {}),
  });
}

const WORKFLOWS_PATH = require.resolve('../workflows');
/** What the bundle is made from besides its input files: the entry point webpack generates is built from these. */
const CACHE_KEY = JSON.stringify({ format: 1, workflows: WORKFLOWS_PATH, failureConverter: FAILURE_CONVERTER_PATH });

interface CachedBundle extends WorkflowBundleWithSourceMap {
  key: string;
  /** Every file webpack read for the bundle, by the SHA-256 of its content. */
  inputs: Record<string, string>;
}

/** The cached bundle, when it was made the same way from files that are all still the same; else undefined. */
async function readCachedBundle(file: string): Promise<WorkflowBundleWithSourceMap | undefined> {
  let cached: CachedBundle;
  try {
    cached = JSON.parse(await readFile(file, 'utf8')) as CachedBundle;
  } catch {
    return undefined; // None yet, or not one this code wrote.
  }
  if (cached.key !== CACHE_KEY || typeof cached.code !== 'string' || typeof cached.inputs !== 'object')
    return undefined;
  const inputs = Object.entries(cached.inputs);
  const digests = await Promise.all(inputs.map(([input]) => digestOf(input)));
  if (digests.some((digest, i) => digest !== inputs[i]![1])) return undefined;
  return { code: cached.code, sourceMap: cached.sourceMap };
}

/** The SHA-256 of a file's content; undefined for a directory (webpack lists those it looked in) or a missing file. */
async function digestOf(file: string): Promise<string | undefined> {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch {
    return undefined;
  }
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
