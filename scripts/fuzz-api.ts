import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../api/server';
import { createLogger } from '../common/logger';
import { freeLoopbackPort } from '../common/net';
import { startDevServer } from '../engine/dev-server';
import { findOrBuildTemporalCli } from '../engine/temporal-cli';

/**
 * `npm run fuzz:api`: schemathesis against the served OpenAPI document of a real control plane (real Temporal dev
 * server, PGlite). No runner is started on purpose: generated gitspaces must never clone from generated hosts, so
 * their starts fail with "no runner" instead. Fails on any 5xx, any answer outside the document, or a wrong 405.
 */
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'unsupported_method',
  'negative_data_rejection',
  'ignored_auth',
];

async function main(): Promise<number> {
  const logger = createLogger('fuzz', 'warn');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-fuzz-'));
  const cliPath = await findOrBuildTemporalCli({
    explicitPath: process.env.TEMPORAL_CLI_PATH,
    searchPath: process.env.PATH,
    logger,
  });
  const temporal = await startDevServer({
    cliPath,
    host: '127.0.0.1',
    port: await freeLoopbackPort(),
    namespace: 'default',
    logger,
  });
  const controlPlane = await startControlPlane(
    {
      dataDir,
      database: { kind: 'pglite' },
      host: '127.0.0.1',
      port: 0,
      temporal: temporal.connection,
      embeddedDefaults: true,
      publicGatewayUrl: 'http://127.0.0.1:3001',
      runnerPickupTimeoutSeconds: 2,
      accessTokenTtlSeconds: 600,
      reconcileEverySeconds: 3600,
      // Thousands of requests from one address and one token, many of them without it on purpose (ignored_auth), and
      // hundreds of creates: with the default limits most answers would be a (documented) 429 or 403 and the rest of
      // the API would go untested. The limits have tests of their own (test/api-limits.test.ts).
      limits: { requestsPerMinute: 1_000_000, authFailuresPerMinute: 1_000_000, maxGitspacesPerUser: 1_000_000 },
    },
    logger,
  );
  try {
    const args = [
      'run',
      `${controlPlane.url}/api/v1/openapi.json`,
      '--url',
      `${controlPlane.url}/api/v1`,
      '-H',
      `Authorization: Bearer ${controlPlane.adminToken}`,
      '--checks',
      CHECKS.join(','),
      '--max-examples',
      process.env.GITSPACES_FUZZ_EXAMPLES ?? '50',
      '--seed',
      process.env.GITSPACES_FUZZ_SEED ?? '20261122',
      '--request-timeout',
      '30',
    ];
    return await new Promise<number>((resolve, reject) => {
      const child = spawn('schemathesis', args, { stdio: 'inherit' });
      child.once('error', reject);
      child.once('exit', (code) => resolve(code ?? 1));
    });
  } finally {
    await controlPlane.stop();
    await temporal.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
