import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * The import zones of eslint.config.mjs bite: a module placed in each zone that imports what the zone forbids gets a
 * no-restricted-imports error, and one that imports what it allows gets none. ESLint runs in a child process (its
 * flat config is an ES module) on source text given a path inside the zone; nothing is written to the tree.
 */
const ROOT = path.resolve(__dirname, '..');

interface Probe {
  file: string;
  code: string;
}

async function restrictedImports(probes: Probe[]): Promise<string[][]> {
  const script = `
    const { ESLint } = require('eslint');
    const path = require('node:path');
    (async () => {
      // Without type information (the files do not exist): the zones need none, only the typed rule does.
      const eslint = new ESLint({
        cwd: ${JSON.stringify(ROOT)},
        overrideConfig: {
          languageOptions: { parserOptions: { projectService: false, project: null } },
          rules: { '@typescript-eslint/no-floating-promises': 'off' },
        },
      });
      const out = [];
      for (const probe of ${JSON.stringify(probes)}) {
        const [result] = await eslint.lintText(probe.code, { filePath: path.join(${JSON.stringify(ROOT)}, probe.file) });
        out.push(result.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal).map((m) => m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((error) => { console.error(error); process.exit(1); });
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '' },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as string[][];
}

/** What each zone forbids, with the message that names the rule it breaks. */
const BANNED: Array<Probe & { message: RegExp }> = [
  {
    file: 'workflows/zone-probe.ts',
    code: "import { readFile } from 'node:fs';\nexport const x = readFile;\n",
    message: /'node:fs' import is restricted.*workflows must stay deterministic/,
  },
  {
    file: 'workflows/zone-probe.ts',
    code: "import { readFile } from 'fs';\nexport const x = readFile;\n",
    message: /'fs' import is restricted.*workflows must stay deterministic/,
  },
  {
    // A built-in the old hand-written list did not name.
    file: 'workflows/zone-probe.ts',
    code: "import { createGzip } from 'node:zlib';\nexport const x = createGzip;\n",
    message: /'node:zlib' import is restricted.*workflows must stay deterministic/,
  },
  {
    file: 'workflows/zone-probe.ts',
    code: "import { newId } from '../common/ids';\nexport const x = newId;\n",
    message: /workflows import only contracts\/ and @temporalio\/workflow/,
  },
  {
    file: 'workflows/zone-probe.ts',
    code: "import { Client } from '@temporalio/client';\nexport const x = Client;\n",
    message: /workflows import only contracts\/ and @temporalio\/workflow/,
  },
  {
    file: 'contracts/zone-probe.ts',
    code: "import { randomBytes } from 'node:crypto';\nexport const x = randomBytes;\n",
    message: /contracts\/ is workflow-safe: no Node built-ins/,
  },
  {
    file: 'contracts/zone-probe.ts',
    code: "import type { Logger } from '../common/logger';\nexport type X = Logger;\n",
    message: /contracts\/ imports only its own modules/,
  },
  {
    file: 'api/zone-probe.ts',
    code: "import { createProviderResolver } from '../providers/resolver';\nexport const x = createProviderResolver;\n",
    message: /the API imports only providers\/validation/,
  },
  {
    file: 'api/zone-probe.ts',
    code: "import { createGcpProvider } from '../providers/gcp/provider';\nexport const x = createGcpProvider;\n",
    message: /the API imports only providers\/validation/,
  },
  {
    file: 'api/zone-probe.ts',
    code: "import { EC2Client } from '@aws-sdk/client-ec2';\nexport const x = EC2Client;\n",
    message: /only the runner loads a cloud SDK/,
  },
  {
    file: 'api/zone-probe.ts',
    code: "import { startRunner } from '../workers/runner';\nexport const x = startRunner;\n",
    message: /the API never loads runner code/,
  },
  {
    file: 'gateway/zone-probe.ts',
    code: "import { createApp } from '../api/app';\nexport const x = createApp;\n",
    message: /the gateway never imports the control plane/,
  },
  {
    file: 'gateway/zone-probe.ts',
    code: "import type { Store } from '../db/store';\nexport type X = Store;\n",
    message: /the gateway never imports the control plane/,
  },
  {
    file: 'gateway/zone-probe.ts',
    code: "import { Client } from '@temporalio/client';\nexport const x = Client;\n",
    message: /the gateway runs without Temporal/,
  },
  {
    file: 'common/zone-probe.ts',
    code: "import { startHarness } from '../test/support/gateway-harness';\nexport const x = startHarness;\n",
    message: /product code never imports tests, test support or dev scripts/,
  },
];

/** What the zones allow: the same folders, nothing reported. */
const ALLOWED: Probe[] = [
  {
    file: 'workflows/zone-probe.ts',
    code:
      "import { proxyActivities } from '@temporalio/workflow';\n" +
      "import type { ControlPlaneActivities } from '../activities/bookkeeping';\n" +
      "import { CONTROL_PLANE_TASK_QUEUE } from '../contracts/lifecycle';\n" +
      'export const x = proxyActivities<ControlPlaneActivities>({ taskQueue: CONTROL_PLANE_TASK_QUEUE });\n',
  },
  {
    file: 'contracts/zone-probe.ts',
    code: "import { z } from 'zod';\nimport { PROVIDER_NAMES } from './provider';\nexport const x = z.enum(PROVIDER_NAMES);\n",
  },
  {
    file: 'api/zone-probe.ts',
    code: "import { validateMachineSpec } from '../providers/validation';\nexport const x = validateMachineSpec;\n",
  },
  {
    file: 'gateway/zone-probe.ts',
    code: "import { ACCESS_TOKEN_AUDIENCE } from '../contracts/access-token';\nexport const x = ACCESS_TOKEN_AUDIENCE;\n",
  },
  {
    // Tests cross zones (a gateway test signs tokens with the API's issuer).
    file: 'gateway/zone-probe.test.ts',
    code: "import { createAccessTokenIssuer } from '../api/access-tokens';\nexport const x = createAccessTokenIssuer;\n",
  },
];

describe('the import zones of eslint.config.mjs', () => {
  let banned: string[][];
  let allowed: string[][];

  beforeAll(async () => {
    const results = await restrictedImports([...BANNED, ...ALLOWED]);
    banned = results.slice(0, BANNED.length);
    allowed = results.slice(BANNED.length);
  }, 120_000);

  it.each(BANNED.map((probe, i) => [probe.file, probe.code.split('\n')[0], i] as const))(
    'refuses in %s: %s',
    (_file, _line, i) => {
      expect(banned[i]).toEqual(expect.arrayContaining([expect.stringMatching(BANNED[i]!.message)]));
    },
  );

  it.each(ALLOWED.map((probe, i) => [probe.file, i] as const))('allows what %s may import (#%s)', (_file, i) => {
    expect(allowed[i]).toEqual([]);
  });
});
