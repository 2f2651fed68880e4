import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { CONTROL_PLANE_TASK_QUEUE, lifecycleWorkflowId } from '../contracts/lifecycle';
import { createLogger } from '../common/logger';
import { connectClient, readTemporalConnection } from '../common/temporal-connection';
import { createWorkOrderSigner } from '../common/work-order';
import { localMachinesRoot } from '../providers/local/provider';
import {
  connectAttacker,
  forgeRunnerActivity,
  hasEvent,
  localMachineStatus,
  outcomeOf,
  readRealStart,
  startForeignListener,
  workflowTaskRefusal,
  workOrderRefusal,
} from './support/attacker';
import { startGitHttpServer, type GitHttpServer } from './support/git-http-server';
import { lifecycleClosed, startTestStack, waitForGitspace, type TestStack } from './support/stack';
import { createTestCa } from './support/tls';
import { startTlsFront } from './support/tls-front';

const { EventType } = temporal.api.enums.v1;

/** Where a planted secret was found: which store, which file (or workflow), the bytes around it. */
interface Hit {
  phase: string;
  where: string;
  source: string;
  secret: 'token' | 'repository path';
  context: string;
}

/** The secret inside base64 after any prefix (JSON payload data, `Authorization: Basic` of `<user>:<token>`). */
function base64Inside(secret: string, offset: number): string {
  const bytes = Buffer.byteLength(secret);
  const encoded = Buffer.concat([Buffer.alloc(offset), Buffer.from(secret)]).toString('base64');
  return encoded.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes)) / 6));
}

/** Every regular file under `dir` (symbolic links not followed); nothing when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const entry = path.join(dir, name);
    const info = await lstat(entry).catch(() => undefined);
    if (info?.isDirectory()) found.push(...(await filesUnder(entry)));
    else if (info?.isFile()) found.push(entry);
  }
  return found;
}

/**
 * Issue 11, the planted-secret scan: a unique repository token and a unique repository path go through start, stop,
 * start, a failed start and delete on the real stack (Temporal dev server with its SQLite file, control plane on a
 * PGlite directory, runner, gateway, local machines, a git server that wants the token); then every place the stack
 * wrote is searched for them, plain and inside base64. The token must be nowhere; the repository path nowhere but in
 * the control-plane database. Not scanned: each machine's own home and workspace (the clone and its credential file
 * are the gitspace's, by design), and the Temporal SDK's own runtime log (console, WARN and above).
 *
 * While the gitspace runs with its token, the attacks of the issue are replayed against it, and each must be refused
 * with nothing changed (its state, its machine, its events) and nothing sent anywhere: a stopGitspace started
 * straight on Temporal without the payload keys; a prepareWorkspace scheduled on the runner's queue by an attacker
 * who holds the payload keys (not the work-order key), aimed at a foreign listener; the real start's order replayed
 * in a new run; a plaintext connection to Temporal's TLS front.
 */
describe('planted-secret scan', () => {
  const token = `plant-token-${randomBytes(16).toString('hex')}`;
  const repository = `plant-repo-${randomBytes(8).toString('hex')}`;
  const missing = `plant-missing-${randomBytes(8).toString('hex')}`;
  let base: string;
  let dbDir: string;
  let temporalDb: string;
  let git: GitHttpServer;
  let stack: TestStack | undefined;
  const logs: string[] = [];
  const hits: Hit[] = [];
  /** How many bytes each place searched held, all phases together: a place with none was not really searched. */
  const scannedBytes = new Map<string, number>();

  const forms = (secret: string) => [secret, ...[0, 1, 2].map((offset) => base64Inside(secret, offset))];
  const secrets = [
    { secret: 'token' as const, forms: forms(token) },
    { secret: 'repository path' as const, forms: [...forms(repository), ...forms(missing)] },
  ];

  /** Each planted secret the bytes hold, in the first of its forms found, and where. */
  const secretsIn = (bytes: Buffer) =>
    secrets.flatMap(({ secret, forms: spellings }) => {
      const form = spellings.find((f) => bytes.includes(f));
      return form === undefined ? [] : [{ secret, form, at: bytes.indexOf(form) }];
    });
  const search = (phase: string, where: string, source: string, bytes: Buffer) => {
    scannedBytes.set(where, (scannedBytes.get(where) ?? 0) + bytes.length);
    for (const { secret, form, at } of secretsIn(bytes)) {
      const around = bytes.subarray(Math.max(0, at - 80), at + form.length + 80).toString('latin1');
      hits.push({ phase, where, source, secret, context: around.replace(/[^\x20-\x7e]/g, '.') });
    }
  };
  const searchFiles = async (phase: string, where: string, files: string[]) => {
    for (const file of files) {
      const bytes = await readFile(file).catch(() => undefined);
      if (!bytes) continue;
      search(phase, where, path.relative(base, file).startsWith('..') ? file : path.relative(base, file), bytes);
    }
  };

  /** The Temporal CLI as an attacker runs it: the address given, no TEMPORAL_* of this shell, no profile, no codec. */
  const temporalCli = async (args: string[]) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TEMPORAL_')));
    await writeFile(path.join(base, 'empty-profile.toml'), '');
    return promisify(execFile)(process.env.TEMPORAL_CLI_PATH!, args, {
      env: { ...env, TEMPORAL_CONFIG_FILE: path.join(base, 'empty-profile.toml') },
      maxBuffer: 64 << 20,
    });
  };

  /**
   * The attacks of the issue, against a running gitspace that has a repository token. Each is refused, and the
   * gitspace's state, machine and events are what they were.
   */
  const replayAttacks = async (s: TestStack, id: string) => {
    await lifecycleClosed(s, id);
    const observed = async () => ({
      state: (await s.api('GET', `/api/v1/gitspaces/${id}`)).body.state,
      machine: await localMachineStatus(s, id),
      events: (await s.api('GET', `/api/v1/gitspaces/${id}/events`)).body.items,
    });
    const before = await observed();
    expect(before).toMatchObject({ state: 'running', machine: 'running' });
    expect(before.events.length).toBeGreaterThan(0);
    const attacker = await connectAttacker(s);
    try {
      // What the attacker with the payload keys copies out of the real start: its spec, order and sealed token.
      const real = await readRealStart(attacker, id);
      expect(typeof real.repositoryTokenSealed).toBe('string');

      // (a) `temporal workflow start --type stopGitspace` straight on Temporal, plaintext input, no payload keys: the
      // control plane's worker refuses the payload, so no workflow code runs; the workflow task fails.
      const workflowId = lifecycleWorkflowId(id);
      const started = await temporalCli([
        ...['workflow', 'start', '--type', 'stopGitspace', '--task-queue', CONTROL_PLANE_TASK_QUEUE],
        ...['--workflow-id', workflowId, '--input', JSON.stringify({ gitspaceId: id })],
        ...['--address', s.temporal.address, '--output', 'json'],
      ]);
      const forgedStop = JSON.parse(started.stdout) as { runId: string };
      const refused = await workflowTaskRefusal(attacker, { workflowId, runId: forgedStop.runId });
      expect(await observed()).toEqual(before);
      expect({
        reason: refused.reason,
        workflowTaskCompleted: hasEvent(refused.history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        activityScheduled: hasEvent(refused.history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
      }).toEqual({
        reason: expect.stringMatching(/refused a payload that is not encrypted/),
        workflowTaskCompleted: false,
        activityScheduled: false,
      });
      await attacker.plain.workflow.getHandle(workflowId, forgedStop.runId).terminate('test: forged stop');

      // (b) prepareWorkspace on the runner's queue (gitspaces-infra-local) from the attacker's own workflow, with the
      // payload keys: the real spec and sealed token, a foreign agent address on loopback, and the repository pointed
      // at the same foreign listener (had the runner obeyed, the token would go there).
      const listener = await startForeignListener();
      try {
        const stolen = { ...real.spec, repository: { url: `${listener.url}/steal.git` } };
        const input = { agentUrl: listener.url, repositoryTokenSealed: real.repositoryTokenSealed };
        const attackerSigner = await createWorkOrderSigner({
          privateKeyPem: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        });
        const outcome = async (build: (run: { workflowId: string; runId: string }) => unknown) =>
          outcomeOf(
            attacker.codec,
            await forgeRunnerActivity(attacker, {
              gitspaceId: id,
              activityType: 'prepareWorkspace',
              workflowType: 'startGitspace',
              build,
            }),
          );
        const outcomes = {
          withoutOrder: await outcome(() => ({ ...input, spec: real.spec })),
          orderOfAnotherKey: await outcome(async (run) => ({
            ...input,
            spec: stolen,
            order: await attackerSigner.sign({
              action: 'start',
              ...run,
              gitspaceId: id,
              infrastructure: stolen,
              spec: stolen,
              ...(real.repositoryTokenSealed ? { repositoryTokenSealed: real.repositoryTokenSealed } : {}),
            }),
          })),
          // (c) the real start's genuine order, replayed in the attacker's new run.
          replayedOrder: await outcome(() => ({ ...input, spec: real.spec, order: real.order })),
          replayedOrderStolenSpec: await outcome(() => ({ ...input, spec: stolen, order: real.order })),
        };
        const received = listener.received().toString('latin1');
        const replayed = new RegExp(`signed for workflow run ${workflowId}/${real.runId}, not for this activity's run`);
        // Each refused, and nothing reached the foreign listener: no agent call, no clone, no token.
        expect({
          outcomes,
          listener: {
            connections: listener.connections(),
            tokenSeen: forms(token).some((form) => received.includes(form)),
            received,
          },
        }).toEqual({
          outcomes: {
            withoutOrder: workOrderRefusal(/carries no work order/),
            orderOfAnotherKey: workOrderRefusal(
              new RegExp(`untrusted work order key: the work order is signed with key '${attackerSigner.keyId}'`),
            ),
            replayedOrder: workOrderRefusal(replayed),
            replayedOrderStolenSpec: workOrderRefusal(replayed),
          },
          listener: { connections: 0, tokenSeen: false, received: '' },
        });
        // The control: the listener does record what reaches it.
        await fetch(`${listener.url}/control`).then((r) => r.text());
        expect(listener.connections()).toBe(1);
        expect(listener.received().toString('latin1')).toContain('GET /control');
      } finally {
        await listener.close();
      }
      expect(await observed()).toEqual(before);

      // (d) a plaintext connection to Temporal's TLS front (nginx stream, client certificates verified), as
      // test/temporal-mtls.test.ts runs it: a client and the CLI are refused; the forged run never reaches Temporal.
      const ca = await createTestCa(base, 'planted-ca');
      const front = await startTlsFront({
        dir: base,
        upstream: s.temporal.address,
        ...(await ca.issue('planted-front', { serverNames: ['127.0.0.1'] })),
        clientCaFile: ca.certFile,
      });
      try {
        const plaintext = readTemporalConnection({ TEMPORAL_ADDRESS: front.address });
        expect(plaintext.tls).toBeUndefined();
        const plaintextClient = await connectClient(plaintext, { connectTimeout: 3000 }).then(
          async (connection) => {
            await connection.close();
            return 'connected';
          },
          (error: Error) => error.message,
        );
        expect(plaintextClient).toContain('Failed to connect before the deadline');
        const throughFront = `forged-plaintext-${randomBytes(4).toString('hex')}`;
        const plaintextCli = await temporalCli([
          ...['workflow', 'start', '--type', 'stopGitspace', '--task-queue', CONTROL_PLANE_TASK_QUEUE],
          ...['--workflow-id', throughFront, '--input', JSON.stringify({ gitspaceId: id })],
          ...['--address', front.address, '--command-timeout', '5s'],
        ]).then(
          () => 'started',
          () => 'refused',
        );
        expect(plaintextCli).toBe('refused');
        const direct = await attacker.plain.workflow
          .getHandle(throughFront)
          .describe()
          .catch((e: unknown) => e);
        expect((direct as Error).name).toBe('WorkflowNotFoundError');
        // The control: with the CA and a client certificate, the same front lets a client through.
        const client = await ca.issue('planted-client');
        const secured = readTemporalConnection({
          TEMPORAL_ADDRESS: front.address,
          TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.certFile,
          TEMPORAL_TLS_SERVER_NAME: '127.0.0.1',
          TEMPORAL_TLS_CLIENT_CERT_PATH: client.certFile,
          TEMPORAL_TLS_CLIENT_KEY_PATH: client.keyFile,
        });
        const connection = await connectClient(secured, { connectTimeout: 10_000 });
        try {
          const handle = new Client({ connection, namespace: 'default' }).workflow.getHandle(
            workflowId,
            forgedStop.runId,
          );
          expect((await handle.describe()).status.name).toBe('TERMINATED');
        } finally {
          await connection.close();
        }
      } finally {
        await front.stop();
      }
      expect(await observed()).toEqual(before);
    } finally {
      await attacker.close();
    }
  };

  /** Everything the stack wrote so far, except the machines' own homes and workspaces. */
  const scan = async (phase: string) => {
    await searchFiles(phase, 'control-plane database', await filesUnder(dbDir));
    const temporalFiles = (await readdir(base)).filter((name) => name.startsWith(path.basename(temporalDb)));
    await searchFiles(
      phase,
      'Temporal store (SQLite)',
      temporalFiles.map((name) => path.join(base, name)),
    );
    if (!stack) return;
    // The data dir: keys, gateway routes, runner state.
    await searchFiles(phase, 'data dir', await filesUnder(stack.dataDir));
    // The runner's records of local machines and each agent's log (agent.log): under .state, which no gitspace sees.
    await searchFiles(
      phase,
      'local machines .state (agent logs)',
      await filesUnder(path.join(localMachinesRoot(stack.dataDir), '.state')),
    );
    search(
      phase,
      'logs (control plane, runner, gateway, dev server output)',
      'captured logger',
      Buffer.from(logs.join('')),
    );
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-planted-'));
    dbDir = path.join(base, 'db');
    temporalDb = path.join(base, 'temporal.sqlite');
    git = await startGitHttpServer({ token });
    await git.createRepository(repository, { 'README.md': '# planted\n' });
    stack = await startTestStack({
      database: { kind: 'pglite', dir: dbDir },
      temporalDbFile: temporalDb,
      logger: createLogger('stack', 'debug', (line) => logs.push(line) > 0),
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
    await rm(base, { recursive: true, force: true });
  }, 60_000);

  it('finds the token in every spelling the scan is meant to catch', () => {
    // Plain, and base64 after a prefix of any length (JSON payload data, `Authorization: Basic <user>:<token>`).
    for (const prefix of ['', 'a', 'ab', 'x-access-token:', '{"token":"']) {
      for (const bytes of [Buffer.from(`${prefix}${token}"}`), Buffer.from(`${prefix}${token}"}`).toString('base64')]) {
        expect({ prefix, found: secretsIn(Buffer.from(`<${bytes}>`)).map((f) => f.secret) }).toEqual({
          prefix,
          found: ['token'],
        });
      }
    }
  });

  it('finds the token nowhere, and the repository path only in the control-plane database', async () => {
    const s = stack!;
    const create = async (name: string, repo: string) => {
      const created = await s.api('POST', '/api/v1/gitspaces', {
        name,
        repository: { url: git.urlOf(repo), token },
        infrastructureId: 'local',
        machineId: 'local-default',
      });
      expect(created.status).toBe(201);
      return created.body.gitspace.id as string;
    };
    const act = async (id: string, action: string) =>
      expect((await s.api('POST', `/api/v1/gitspaces/${id}/actions`, { action })).status).toBe(202);
    const settled = (state: string) => (g: any) => g.state === state || g.state === 'error';

    const id = await create('planted', repository);
    expect((await waitForGitspace(s, id, settled('running'))).state).toBe('running');
    // The clone did use the token (the server refuses anything without it).
    expect(git.requests.filter((r) => r.path.includes(repository) && r.authorized).length).toBeGreaterThan(0);
    await scan('start');
    await act(id, 'stop');
    expect((await waitForGitspace(s, id, settled('stopped'))).state).toBe('stopped');
    await scan('stop');
    await act(id, 'start');
    expect((await waitForGitspace(s, id, settled('running'))).state).toBe('running');
    await scan('second start');

    await replayAttacks(s, id);
    await scan('attacks');

    // A start that fails: the repository does not exist (the token is right).
    const failing = await create('planted-missing', missing);
    const failed = await waitForGitspace(s, failing, (g) => g.state === 'error' || g.state === 'running');
    expect(failed.state).toBe('error');
    await scan('failed start');

    for (const gitspace of [id, failing]) {
      expect((await s.api('DELETE', `/api/v1/gitspaces/${gitspace}`)).status).toBe(202);
      // The failed one is in `error` already: wait for the delete's own outcome.
      const gone = await waitForGitspace(
        s,
        gitspace,
        (g) => g.state === 'deleted' || (g.state === 'error' && g.lastError?.action === 'delete'),
      );
      expect(gone.state === 'deleted' ? 'deleted' : gone).toBe('deleted');
    }
    await scan('delete');

    // Temporal's history as anyone with its address gets it: a client without the codec, and `temporal workflow show`.
    const connection = await Connection.connect({ address: s.temporal.address });
    const runs: { workflowId: string; runId: string }[] = [];
    try {
      const plain = new Client({ connection, namespace: 'default' });
      for await (const run of plain.workflow.list()) {
        runs.push({ workflowId: run.workflowId, runId: run.runId });
        const history = await plain.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
        const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
        search('history', 'Temporal history (client without the codec)', `${run.workflowId} ${run.runId}`, bytes);
        const { raw } = await plain.workflow.getHandle(run.workflowId, run.runId).describe();
        const described = temporal.api.workflowservice.v1.DescribeWorkflowExecutionResponse.encode(raw).finish();
        search('history', 'Temporal describe (memo, search attributes)', run.workflowId, Buffer.from(described));
      }
    } finally {
      await connection.close();
    }
    expect(runs.length).toBeGreaterThanOrEqual(5);
    // The dev server's address only: no TEMPORAL_* of this shell, no profile (an empty profile file).
    for (const run of runs) {
      const { stdout } = await temporalCli([
        ...['workflow', 'show', '-w', run.workflowId, '-r', run.runId],
        ...['--output', 'json', '--address', s.temporal.address],
      ]);
      search('history', 'temporal workflow show --output json', `${run.workflowId} ${run.runId}`, Buffer.from(stdout));
    }

    // Stopped, every store has written what it holds: the database and Temporal's file once more.
    await stack!.stop();
    stack = undefined;
    await scan('after the stack stopped');

    expect(logs.length).toBeGreaterThan(0);
    // Every place was searched with something in it (a path gone wrong would leave it empty, and the scan vacuous).
    const searched = Object.fromEntries([...scannedBytes].map(([where, bytes]) => [where, bytes > 0]));
    expect(searched).toEqual({
      'control-plane database': true,
      'Temporal store (SQLite)': true,
      'data dir': true,
      'local machines .state (agent logs)': true,
      'logs (control plane, runner, gateway, dev server output)': true,
      'Temporal history (client without the codec)': true,
      'Temporal describe (memo, search attributes)': true,
      'temporal workflow show --output json': true,
    });
    // The scan sees what the control plane stores: the repository URL is in its database, as it should be.
    expect(hits.some((h) => h.where === 'control-plane database' && h.secret === 'repository path')).toBe(true);

    const unexpected = hits.filter((h) => h.secret === 'token' || h.where !== 'control-plane database');
    expect(unexpected).toEqual([]);
  }, 300_000);
});
