import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PayloadKeyRing } from '../common/payload-codec';
import { RunnerKeyRing, RunnerPublicKey } from '../common/sealed-secret';
import { SEARCH_ATTRIBUTE_NAMES } from '../engine/search-attributes';
import { SessionKey } from '../api/auth/session-key';

const ROOT = path.resolve(__dirname, '..');
/** What docker-compose.yml reads besides itself: the image's Dockerfile, the mounted files, the example env. */
const PROJECT_FILES = ['docker-compose.yml', 'Dockerfile', '.env.example', 'deploy/compose'];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

interface Summary {
  services: Record<
    string,
    { role: string; image: string; ports: string[]; networks: string[]; environment: Record<string, string> }
  >;
}

let checker: string;

async function check(dir: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(checker, args, { cwd: dir, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const EXAMPLE_ARGS = ['-f', 'docker-compose.yml', '--env-file', '.env.example', '--example'];

/** Replaces `from` in `text`, which must hold it exactly once (so an edit cannot silently do nothing). */
function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const count =
    typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from, 'g')) ?? []).length;
  if (count !== 1) throw new Error(`the edit expects ${String(from)} exactly once, found it ${count} times`);
  return text.replace(from, to);
}

type Edit = { file: string; edit: (text: string) => string };

/** A copy of the project's compose files with the edits applied, in a temporary directory. */
async function mutated(edits: Edit[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-compose-'));
  for (const file of PROJECT_FILES) await cp(path.join(ROOT, file), path.join(dir, file), { recursive: true });
  for (const { file, edit } of edits) {
    const target = path.join(dir, file);
    await writeFile(target, edit(await readFile(target, 'utf8')));
  }
  return dir;
}

const compose = (edit: (text: string) => string): Edit => ({ file: 'docker-compose.yml', edit });

describe('docker-compose.yml on the production pattern (tools/compose-check)', () => {
  const dirs: string[] = [];

  beforeAll(async () => {
    // Built from the Go module proxy on the first run, then reused from the user-level cache.
    const { stdout } = await promisify(execFile)('bash', [path.join(ROOT, 'scripts/compose-check.sh'), 'path'], {
      timeout: 600_000,
    });
    checker = stdout.trim();
  }, 620_000);

  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  test('the committed file loads with .env.example and keeps every rule', async () => {
    const result = await check(ROOT, [...EXAMPLE_ARGS, '--json']);
    expect(result.stderr).toContain('every rule holds');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as Summary;
    const published = Object.entries(summary.services)
      .filter(([, s]) => s.ports.length > 0)
      .map(([name, s]) => `${name} ${s.ports.join(' ')}`)
      .sort();
    expect(published).toEqual([
      'api 127.0.0.1:3000->8080',
      'codec-server 127.0.0.1:3003->3003',
      'gateway :3001->3001',
      'temporal-ui 127.0.0.1:8233->8080',
    ]);
  });

  test('the search-attributes job registers exactly the attributes the API sets', async () => {
    const summary = JSON.parse((await check(ROOT, [...EXAMPLE_ARGS, '--json'])).stdout) as Summary;
    const job = summary.services['temporal-search-attributes']!;
    expect(job.environment.GITSPACES_SEARCH_ATTRIBUTES!.split(',').sort()).toEqual([...SEARCH_ATTRIBUTE_NAMES].sort());
  });

  test('scripts/compose-env.sh writes an .env whose keys every part accepts, shared where they must be', async () => {
    const dir = await mutated([]);
    dirs.push(dir);
    const { stdout: env } = await promisify(execFile)('bash', [path.join(ROOT, 'scripts/compose-env.sh')], {
      env: { ...process.env, COMPOSE_ENV_EXAMPLE: path.join(dir, '.env.example') },
    });
    await writeFile(path.join(dir, '.env'), env, { mode: 0o600 });
    const result = await check(dir, ['-f', 'docker-compose.yml', '--env-file', '.env', '--json']);
    expect(result.stderr).toContain('every rule holds');
    const { services } = JSON.parse(result.stdout) as Summary;
    const api = services['api-1']!.environment;
    const runner = services.runner!.environment;

    // The runner's ring and the public key the API seals repository tokens to are one key pair.
    const ring = RunnerKeyRing.parse(runner.GITSPACES_RUNNER_KEYS!);
    expect(RunnerPublicKey.parse(api.GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS!).toString()).toBe(
      ring.publicKeys()[0]!.toString(),
    );
    // The runner checks work orders against the public half of the key the API signs them with (PEM through .env).
    const workOrderKey = createPrivateKey(api.GITSPACES_WORK_ORDER_KEY!);
    expect(createPublicKey(workOrderKey).export({ format: 'pem', type: 'spki' }).toString().trim()).toBe(
      runner.GITSPACES_WORK_ORDER_PUBLIC_KEY!.trim(),
    );
    expect(createPrivateKey(api.GITSPACES_ACCESS_TOKEN_KEY!).asymmetricKeyType).toBe('ed25519');
    expect(api.GITSPACES_ACCESS_TOKEN_KEY).not.toBe(api.GITSPACES_WORK_ORDER_KEY);
    expect(() => PayloadKeyRing.parse(api.GITSPACES_PAYLOAD_KEYS!)).not.toThrow();
    expect(services['codec-server']!.environment.GITSPACES_PAYLOAD_KEYS).toBe(api.GITSPACES_PAYLOAD_KEYS);
    expect(services['api-2']!.environment.GITSPACES_ACCESS_TOKEN_KEY).toBe(api.GITSPACES_ACCESS_TOKEN_KEY);
    // One session key for both replicas, in the form the API reads it.
    expect(() => SessionKey.parse(api.GITSPACES_SESSION_KEY!)).not.toThrow();
    expect(services['api-2']!.environment.GITSPACES_SESSION_KEY).toBe(api.GITSPACES_SESSION_KEY);
    expect(services.gateway!.environment.GITSPACES_DASHBOARD_URL).toBe(api.GITSPACES_PUBLIC_URL);
  });

  test('an .env with a blank secret does not start: Compose names the variable', async () => {
    const result = await check(ROOT, ['-f', 'docker-compose.yml', '--env-file', '.env.example']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/required variable [A-Z_]+ is missing a value/);
  });

  // Each edit is a way the deployment could be weakened; the checker must refuse every one, saying what is wrong.
  const attacks: [string, Edit[], string][] = [
    [
      "Temporal's unauthenticated frontend published",
      [
        compose((t) =>
          replaceOnce(t, '    # No ports: the frontend', "    ports: ['7233:7233']\n    # No ports: the frontend"),
        ),
      ],
      'service temporal: publishes port :7233->7233',
    ],
    [
      'the Web UI published on every interface',
      [compose((t) => replaceOnce(t, "'127.0.0.1:${GITSPACES_TEMPORAL_UI_LOOPBACK_PORT:-8233}:8080'", "'8233:8080'"))],
      'service temporal-ui: publishes :8233->8080 on every interface',
    ],
    [
      'PostgreSQL published on loopback',
      [
        compose((t) =>
          replaceOnce(
            t,
            '    networks: [database]\n    healthcheck:',
            "    ports: ['127.0.0.1:5432:5432']\n    networks: [database]\n    healthcheck:",
          ),
        ),
      ],
      'service postgresql: publishes port 127.0.0.1:5432->5432',
    ],
    [
      'the gateway without a health check',
      [
        compose((t) =>
          replaceOnce(
            t,
            / {4}healthcheck:\n {6}test: \['CMD', 'node', '\/app\/healthcheck.mjs', 'http:\/\/127.0.0.1:3001\/healthz'\]\n( {6}.*\n){4}/,
            '',
          ),
        ),
      ],
      'service gateway: has no health check',
    ],
    [
      'PostgreSQL without a restart policy',
      [
        compose((t) =>
          replaceOnce(t, 'image: postgres:16-bookworm\n    restart: unless-stopped\n', 'image: postgres:16-bookworm\n'),
        ),
      ],
      'service postgresql: has no restart policy',
    ],
    [
      'a single API replica',
      [
        compose((t) => replaceOnce(t, '  api-2:\n    <<: *api\n    volumes: [api-2-data:/data]\n\n', '')),
        compose((t) => t.replaceAll('      api-2: { condition: service_healthy }\n', '')),
        { file: 'deploy/compose/nginx-api.conf', edit: (t) => replaceOnce(t, / {4}server api-2:3000 .*\n/, '') },
      ],
      'the API runs 1 replica(s) (api-1); want 2 or more',
    ],
    [
      'a second API replica signing access tokens with a key of its own',
      [
        compose((t) =>
          replaceOnce(
            t,
            '  api-2:\n    <<: *api\n',
            "  api-2:\n    <<: *api\n    environment:\n      <<: *api-environment\n      GITSPACES_ACCESS_TOKEN_KEY: ''\n",
          ),
        ),
      ],
      'service api-2: (api) is not given GITSPACES_ACCESS_TOKEN_KEY',
    ],
    [
      'the proxy forgetting a replica',
      [{ file: 'deploy/compose/nginx-api.conf', edit: (t) => replaceOnce(t, / {4}server api-2:3000 .*\n/, '') }],
      'service api: does not send requests to the API replica api-2',
    ],
    [
      'a secret with a default in the compose file',
      [
        compose((t) =>
          replaceOnce(
            t,
            '${GITSPACES_CODEC_TOKEN:?set GITSPACES_CODEC_TOKEN in .env}',
            '${GITSPACES_CODEC_TOKEN:-changeme}',
          ),
        ),
      ],
      'the secret GITSPACES_CODEC_TOKEN is not required',
    ],
    [
      'a required secret the codec server is not given',
      [compose((t) => replaceOnce(t, / {6}GITSPACES_CODEC_TOKEN: .*\n/, ''))],
      'service codec-server: (codec) is not given GITSPACES_CODEC_TOKEN',
    ],
    [
      'a secret value in the committed example',
      [
        {
          file: '.env.example',
          edit: (t) => replaceOnce(t, '\nGITSPACES_ADMIN_TOKEN=\n', '\nGITSPACES_ADMIN_TOKEN=admin\n'),
        },
      ],
      'gives the secret GITSPACES_ADMIN_TOKEN a value',
    ],
    [
      'temporalio/auto-setup instead of the server and its jobs',
      [compose((t) => replaceOnce(t, 'image: temporalio/server:1.32.2', 'image: temporalio/auto-setup:1.29.0'))],
      'temporalio/auto-setup is no longer built',
    ],
    [
      'the Temporal server on several networks with no broadcast address',
      [compose((t) => replaceOnce(t, / {6}TEMPORAL_BROADCAST_ADDRESS: .*\n/, ''))],
      'service temporal: is on 3 networks but TEMPORAL_BROADCAST_ADDRESS is not set',
    ],
    [
      'an image that is not pinned',
      [compose((t) => replaceOnce(t, 'image: postgres:16-bookworm', 'image: postgres:latest'))],
      'service postgresql: image "postgres:latest" is not pinned',
    ],
    [
      'the image running the parts as root',
      [{ file: 'Dockerfile', edit: (t) => replaceOnce(t, '\nUSER node\n', '\n') }],
      'service gateway: runs as root',
    ],
    [
      'the runner as root without saying why',
      [compose((t) => replaceOnce(t, / {4}x-gitspaces-root-reason: .*\n/, ''))],
      'service runner: runs as root (user "0:0") with no x-gitspaces-root-reason',
    ],
    [
      'the runner given SYS_ADMIN',
      [compose((t) => replaceOnce(t, 'cap_add: [CHOWN,', 'cap_add: [SYS_ADMIN, CHOWN,'))],
      'service runner: runs as root and adds capability SYS_ADMIN',
    ],
    [
      "the gateway (and so the runner's gitspaces) on the database's network",
      [compose((t) => replaceOnce(t, 'networks: [edge, temporal, api]', 'networks: [edge, temporal, api, database]'))],
      'service gateway: shares network "database" with postgresql',
    ],
    [
      'API replicas that believe no X-Forwarded-For behind the proxy (one guesser locks everyone out)',
      [compose((t) => replaceOnce(t, /\n {2}GITSPACES_API_TRUSTED_PROXIES: .*/, ''))],
      'service api-1: GITSPACES_API_TRUSTED_PROXIES is not set',
    ],
    [
      "the gateway (and so the runner's gitspaces) on the network whose X-Forwarded-For the API believes",
      [compose((t) => replaceOnce(t, 'networks: [edge, temporal, api]', 'networks: [edge, temporal, api, api-proxy]'))],
      'service api-1: trusts X-Forwarded-For from network "api-proxy", which gateway is on too',
    ],
    [
      'API replicas trusting a subnet that is no network of theirs',
      [
        compose((t) =>
          replaceOnce(
            t,
            'GITSPACES_API_TRUSTED_PROXIES: ${GITSPACES_API_PROXY_SUBNET:-172.31.255.240/28}',
            'GITSPACES_API_TRUSTED_PROXIES: 0.0.0.0/0',
          ),
        ),
      ],
      'service api-2: trusts X-Forwarded-For from 0.0.0.0/0, which is not the subnet of a network',
    ],
  ];

  test.each(attacks)('refuses %s', async (_name, edits, message) => {
    const dir = await mutated(edits);
    dirs.push(dir);
    const result = await check(dir, EXAMPLE_ARGS);
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(1);
  });
});
