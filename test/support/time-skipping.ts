/**
 * Temporal's time-skipping test server for the fast workflow tests, without downloading anything at test time.
 *
 * The server is the Java one (`io.temporal.testserver.TestServer`, part of the Java SDK), resolved with Maven from the
 * pinned `temporal-test-server.pom.xml` beside this file: its jars are copied once into a user-level cache keyed by
 * version (`${GITSPACES_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/gitspaces-tools}/temporal-test-server-<version>/`),
 * with a small wrapper script that the SDK's `TestWorkflowEnvironment.createTimeSkipping` starts as an existing
 * executable (the SDK passes the port as its first argument). Needs Java 17+ always and Maven for the first
 * resolution; offline after that. `TEMPORAL_TEST_SERVER_PATH` names another executable that takes the port the same way.
 *
 * `npx tsx test/support/time-skipping.ts` resolves it ahead of time (CI does) and prints the wrapper's path.
 */
import { execFile } from 'node:child_process';
import { access, chmod, constants, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { DataConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';

const run = promisify(execFile);

/** The pinned test server version: the same as in temporal-test-server.pom.xml (checked when resolving). */
export const TEST_SERVER_VERSION = '1.31.0';
const POM = path.join(__dirname, 'temporal-test-server.pom.xml');
const MAIN_CLASS = 'io.temporal.testserver.TestServer';

/** The user-level tool cache scripts/terraform-tools.sh uses too. */
export function toolsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.GITSPACES_TOOLS_CACHE ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'gitspaces-tools')
  );
}

export function testServerDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(toolsCacheDir(env), `temporal-test-server-${TEST_SERVER_VERSION}`);
}

const exists = (file: string, mode = constants.F_OK) =>
  access(file, mode).then(
    () => true,
    () => false,
  );

/**
 * The path of an executable that starts the time-skipping test server on the port given as its first argument:
 * TEMPORAL_TEST_SERVER_PATH, or the cached wrapper, resolved with Maven first when the cache does not hold it yet.
 */
export async function findOrInstallTestServer(log: (line: string) => void = () => undefined): Promise<string> {
  const explicit = process.env.TEMPORAL_TEST_SERVER_PATH;
  if (explicit) {
    if (!(await exists(explicit, constants.X_OK)))
      throw new Error(`TEMPORAL_TEST_SERVER_PATH '${explicit}' is not an executable file`);
    return explicit;
  }
  const dir = testServerDir();
  const wrapper = path.join(dir, 'temporal-test-server');
  if (await exists(wrapper, constants.X_OK)) return wrapper;

  const pom = await readFile(POM, 'utf8');
  if (!pom.includes(`<version>${TEST_SERVER_VERSION}</version>`))
    throw new Error(`${POM} does not pin temporal-test-server ${TEST_SERVER_VERSION}: change both together`);
  for (const tool of ['java', 'mvn']) {
    await run(tool, ['-version']).catch(() => {
      throw new Error(
        `the time-skipping test server needs '${tool}' on PATH (Java 17+ and Maven; on Debian: apt-get install default-jre-headless maven) to resolve temporal-test-server ${TEST_SERVER_VERSION} into ${dir} once`,
      );
    });
  }
  log(`resolving temporal-test-server ${TEST_SERVER_VERSION} with Maven into ${dir} (once)`);
  await mkdir(path.dirname(dir), { recursive: true });
  // Built beside its final place and renamed there, so a run that dies halfway or a second one at once leaves no half.
  const staging = await mkdtemp(`${dir}.partial-`);
  try {
    const lib = path.join(staging, 'lib');
    await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        POM,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${lib}`,
        '-DincludeScope=runtime',
        // Maven's own output folder, which it makes even for this: not in the source tree.
        `-Dproject.build.directory=${path.join(staging, 'target')}`,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(
        `could not resolve temporal-test-server ${TEST_SERVER_VERSION} with Maven: ${(error.stdout || error.stderr || error.message).trim()}`,
      );
    });
    const jars = (await readdir(lib)).filter((name) => name.endsWith('.jar'));
    if (!jars.some((name) => name.startsWith(`temporal-test-server-${TEST_SERVER_VERSION}`)))
      throw new Error(`Maven copied no temporal-test-server-${TEST_SERVER_VERSION}.jar into ${lib}`);
    await rm(path.join(staging, 'target'), { recursive: true, force: true });
    // `exec`: the SDK stops the server by killing the process it started, which must be the JVM itself.
    await writeFile(
      path.join(staging, 'temporal-test-server'),
      [
        '#!/bin/sh',
        `# Temporal's time-skipping test server ${TEST_SERVER_VERSION}; first argument: the port. Written by test/support/time-skipping.ts.`,
        'here="$(dirname "$0")"',
        'java="${JAVA_HOME:+$JAVA_HOME/bin/}java"',
        // A small, quick-starting JVM: the tests need seconds of it, not throughput.
        `exec "$java" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Xmx256m -cp "$here/lib/*" ${MAIN_CLASS} "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(path.join(staging, 'temporal-test-server'), 0o755);
    try {
      await rename(staging, dir);
    } catch (error) {
      // Another run finished first: use its copy.
      if (!(await exists(wrapper, constants.X_OK))) throw error;
      await rm(staging, { recursive: true, force: true });
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  log(`temporal-test-server ${TEST_SERVER_VERSION} is in ${dir}`);
  return wrapper;
}

/**
 * A time-skipping test environment on the cached test server (started on a free port; `teardown()` stops it). Give it
 * the data converter the workers use, so the client seals and opens payloads as they do.
 */
export async function createTimeSkippingEnvironment(
  options: { dataConverter?: DataConverter } = {},
): Promise<TestWorkflowEnvironment> {
  const executable = await findOrInstallTestServer();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: executable } },
    ...(options.dataConverter ? { client: { dataConverter: options.dataConverter } } : {}),
  });
}

if (require.main === module) {
  findOrInstallTestServer((line) => process.stderr.write(`${line}\n`)).then(
    (executable) => process.stdout.write(`${executable}\n`),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
