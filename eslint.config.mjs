// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

/** Every Node built-in, as `x` and as `node:x` (some exist only in the `node:` form). */
const nodeBuiltins = [...new Set(builtinModules.flatMap((m) => (m.startsWith('node:') ? [m] : [m, `node:${m}`])))];

/** The product folders: what ships. Tests, test support (test/) and dev scripts (scripts/) are not product. */
const PRODUCT = [
  'activities',
  'agent',
  'api',
  'codec',
  'common',
  'contracts',
  'db',
  'engine',
  'gateway',
  'providers',
  'workers',
  'workflows',
];
const product = (...folders) => ({ files: folders.map((f) => `${f}/**/*.ts`), ignores: ['**/*.test.ts'] });

/** A project folder, by relative path from any depth of a product folder. */
const folder = (names) => `^(\\.\\./)+(${names.join('|')})(/|$)`;
const noTestSupport = {
  regex: folder(['test', 'scripts']),
  message: 'product code never imports tests, test support or dev scripts',
};
const cloudSdks = {
  regex: '^(@google-cloud|@aws-sdk)/',
  message: 'only the runner loads a cloud SDK (through providers/resolver.ts)',
};

/** Import zones (README, Architecture): one no-restricted-imports list per zone; later blocks replace earlier ones. */
const zones = [
  {
    ...product(...PRODUCT),
    rules: { 'no-restricted-imports': ['error', { patterns: [noTestSupport] }] },
  },
  {
    // contracts/ is workflow-safe: what workflows, activities, the API, the gateway and the agent share.
    ...product('contracts'),
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'contracts/ is workflow-safe: no Node built-ins' })),
          patterns: [
            {
              regex: '^(?!\\./[^/]+$|zod$|@temporalio/common$)',
              message: 'contracts/ imports only its own modules, zod and @temporalio/common',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflow code must be deterministic: contracts/ and the workflow SDK; activities and the rest only as types.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflows must stay deterministic' })),
          patterns: [
            {
              regex: '^(?!@temporalio/workflow$|\\./|\\.\\./contracts/)',
              allowTypeImports: true,
              message: 'workflows import only contracts/ and @temporalio/workflow; anything else only as a type',
            },
          ],
        },
      ],
    },
  },
  {
    // The API validates provider configs and never runs a provider: no cloud SDK, no provider, no runner code.
    ...product('api'),
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            noTestSupport,
            cloudSdks,
            {
              regex: '^(\\.\\./)+providers(/(?!validation$).*)?$',
              message: 'the API imports only providers/validation (zod schemas), never a provider',
            },
            {
              regex: folder(['workers/runner[^/]*', 'activities/(infrastructure|secret-store)']),
              message: 'the API never loads runner code',
            },
          ],
        },
      ],
    },
  },
  {
    // The gateway stands alone: no control plane, database, Temporal, runner or provider code.
    ...product('gateway'),
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            noTestSupport,
            cloudSdks,
            {
              regex: folder(['api', 'db', 'activities', 'workers', 'workflows', 'providers', 'engine', 'codec']),
              message: 'the gateway never imports the control plane, the database, workers or providers',
            },
            {
              regex: '^(@temporalio|pg|kysely|express)(/|$)',
              message: 'the gateway runs without Temporal, a database or express',
            },
          ],
        },
      ],
    },
  },
  {
    // The dashboard runs in the browser: React, its own modules and contracts/ (workflow-safe, so browser-safe); the
    // API's schemas and zod only as types, so nothing of the server is bundled. Anything else is a new dependency.
    files: ['web/src/**/*.ts', 'web/src/**/*.tsx'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'the dashboard runs in the browser: no Node built-ins',
          })),
          patterns: [
            {
              regex: '^(?!react$|react-dom/client$|zod$|\\.{1,2}/)',
              message: 'the dashboard imports only react and react-dom/client; another package is a new dependency',
            },
            {
              regex: folder([...PRODUCT.filter((f) => f !== 'contracts' && f !== 'api'), 'test', 'scripts']),
              message: 'the dashboard imports only contracts/ from the rest of the project',
            },
            {
              regex: '^(\\.\\./)+api/(?!schemas$)',
              message: 'the dashboard imports nothing of the API but the types of api/schemas',
            },
            {
              regex: '^((\\.\\./)+api/schemas|zod)$',
              allowTypeImports: true,
              message: 'api/schemas and zod only as types (import type): the dashboard bundles no server code',
            },
          ],
        },
      ],
    },
  },
  {
    // Vite's own config, one import deep: no-cycle would walk Vite's bundled sources and fails to resolve them.
    files: ['web/vite.config.mts'],
    rules: { 'import-x/no-cycle': 'off' },
  },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      '.tools/',
      '.gitspaces/',
      '.gitspaces-machines/',
      'coverage/',
      'test-artifacts/',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
  ...zones,
);
