/**
 * Two projects, so `npm test` runs the fast set first (package.json: jest --selectProjects fast, then system):
 *  - fast: no Temporal dev server, cloud emulator, browser or build. The workflow unit tests on the time-skipping test
 *    server (test/support/time-skipping.ts: Java, resolved from Maven once into the user-level tool cache), the API
 *    routes on PGlite with the Temporal edge faked, and the pure unit tests. Seconds, not minutes.
 *  - system: everything else, on real parts (a Temporal dev server per file, emulators, Chromium, packaging).
 */
const FAST = [
  '/test/workflows/[^/]+\\.test\\.ts$',
  '/api/[^/]+\\.test\\.ts$',
  '/common/(?!temporal-connection\\.)[^/]+\\.test\\.ts$',
  '/db/[^/]+\\.test\\.ts$',
  '/providers/(naming|permissions)\\.test\\.ts$',
  '/providers/(aws|gcp)/config\\.test\\.ts$',
  '/test/api-limits\\.test\\.ts$',
  '/test/golden-histories\\.test\\.ts$',
  '/web/src/.*\\.test\\.ts$',
  '/cli/[^/]+\\.test\\.ts$',
];
const IGNORED = ['/node_modules/', '/dist/', '/.tools/', '/.gitspaces/', '/.gitspaces-machines/'];

/** @type {import('jest').Config} */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120_000,
  // Two cores: integration suites each run a Temporal worker; more parallelism only adds contention.
  maxWorkers: 2,
  projects: [
    {
      ...shared,
      displayName: 'fast',
      testRegex: FAST,
      testPathIgnorePatterns: IGNORED,
      globalSetup: '<rootDir>/test/support/fast-global-setup.ts',
    },
    {
      ...shared,
      displayName: 'system',
      testMatch: ['<rootDir>/**/*.test.ts'],
      testPathIgnorePatterns: [...IGNORED, ...FAST],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
  ],
};
