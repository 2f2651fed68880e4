// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

const nodeBuiltins = [
  'fs',
  'path',
  'os',
  'crypto',
  'child_process',
  'http',
  'https',
  'net',
  'dns',
  'url',
  'util',
  'stream',
  'process',
  'timers',
  'worker_threads',
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
      '**/testdata/',
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
  {
    // Workflow code must be deterministic: no Node built-ins, and activities, SDKs and express only as types.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'workflows must stay deterministic',
          })),
          patterns: [
            {
              regex: '^(express|pg|kysely|@google-cloud/.*|@aws-sdk/.*|@temporalio/(client|worker|activity))$',
              allowTypeImports: true,
              message: 'workflows may import this only as a type',
            },
            {
              regex: '^\\.\\./(activities|api|db|providers/(?!errors$|types$)|gateway|agent|workers)',
              allowTypeImports: true,
              message: 'workflows may import activities and services only as types',
            },
          ],
        },
      ],
    },
  },
);
