import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { infrastructureTaskQueue } from '../contracts/lifecycle';
import { silentLogger } from '../common/logger';
import {
  connectClient,
  connectionOptions,
  readTemporalConnection,
  type TemporalConnection,
} from '../common/temporal-connection';
import type { DevServer } from '../engine/dev-server';
import { startRunner, type RunningRunner } from '../workers/runner-process';
import { installWorkerRuntime } from '../workers/runtime';
import { startTestTemporal } from './support/temporal';
import { createTestCa, type TestCa } from './support/tls';
import { startTlsFront, type TlsFront } from './support/tls-front';

/**
 * Authenticated, encrypted connections to Temporal, for real: the dev server behind a TLS front (nginx stream,
 * `ssl_verify_client on`) with a CA and certificates made here. A runner and a client configured the way an operator
 * would (TEMPORAL_TLS_* variables, a TOML profile) get through; a client without a certificate, with one from another
 * CA, or in plaintext does not.
 */
/** How a refused connection looks: the TLS front ends it, so the first call fails (never a configuration error). */
const CLIENT_REFUSED = 'Failed to connect before the deadline';
const WORKER_REFUSED = /^Failed to call GetSystemInfo: .*(transport error|operation was canceled)/;

describe('Temporal behind mTLS', () => {
  let dir: string;
  let temporal: DevServer;
  let front: TlsFront;
  let ca: TestCa;
  let runnerCert: { certFile: string; keyFile: string };
  /** What an operator sets for a runner: the front's address, its CA and name, and the runner's own certificate. */
  let runnerEnv: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-mtls-'));
    ca = await createTestCa(dir, 'temporal-ca');
    const server = await ca.issue('temporal-front', { serverNames: ['temporal.test', '127.0.0.1'] });
    runnerCert = await ca.issue('runner-mtls');
    temporal = await startTestTemporal();
    front = await startTlsFront({ dir, upstream: temporal.address, ...server, clientCaFile: ca.certFile });
    runnerEnv = {
      TEMPORAL_ADDRESS: front.address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.certFile,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      TEMPORAL_TLS_CLIENT_CERT_PATH: runnerCert.certFile,
      TEMPORAL_TLS_CLIENT_KEY_PATH: runnerCert.keyFile,
    };
    installWorkerRuntime();
  });
  afterAll(async () => {
    await front?.stop();
    await temporal?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Polls the queue's pollers through the plain loopback connection (the server's own view). */
  const pollers = async (taskQueue: string): Promise<number> => {
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const { pollers: list } = await connection.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: taskQueue },
        taskQueueType: 2, // TASK_QUEUE_TYPE_ACTIVITY: the runner runs activities only
      });
      return list?.length ?? 0;
    } finally {
      await connection.close();
    }
  };

  it('a runner with its certificate connects through the TLS front and polls its queue', async () => {
    const taskQueue = infrastructureTaskQueue('mtls');
    const runnerDir = path.join(dir, 'runner');
    let runner: RunningRunner | undefined;
    try {
      runner = await startRunner(
        {
          infrastructureId: 'mtls',
          temporal: readTemporalConnection(runnerEnv),
          dataDir: runnerDir,
          localMachinesDir: path.join(dir, 'runner-machines'),
          gatewayAdminUrl: 'http://127.0.0.1:1',
          gatewayAdminToken: 'unused',
          installationId: 'mtls-test',
        },
        silentLogger,
      );
      const deadline = Date.now() + 30_000;
      while ((await pollers(taskQueue)) === 0) {
        if (Date.now() > deadline) throw new Error(`no poller on ${taskQueue} through the TLS front`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await runner?.stop();
    }
  });

  it('a client from a TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) starts a workflow through it', async () => {
    const file = path.join(dir, 'temporal.toml');
    await writeFile(
      file,
      [
        '[profile.secured]',
        `address = "${front.address}"`,
        'namespace = "default"',
        '[profile.secured.tls]',
        `server_ca_cert_path = "${ca.certFile}"`,
        'server_name = "temporal.test"',
        `client_cert_path = "${runnerCert.certFile}"`,
        `client_key_path = "${runnerCert.keyFile}"`,
        '',
      ].join('\n'),
    );
    const settings = readTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'secured' });
    const connection = await connectClient(settings, { connectTimeout: 10_000 });
    try {
      const client = new Client({ connection, namespace: settings.namespace });
      const handle = await client.workflow.start('nobodyRunsThis', { workflowId: 'mtls-wf', taskQueue: 'mtls-none' });
      expect((await handle.describe()).status.name).toBe('RUNNING');
      await handle.terminate('test done');
    } finally {
      await connection.close();
    }
  });

  describe('refused', () => {
    const refusedClient = (settings: TemporalConnection) => connectClient(settings, { connectTimeout: 3000 });
    const withoutClientCert = () =>
      readTemporalConnection({
        TEMPORAL_ADDRESS: front.address,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.certFile,
        TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      });

    it('a client and a worker without a client certificate', async () => {
      await expect(refusedClient(withoutClientCert())).rejects.toThrow(CLIENT_REFUSED);
      await expect(NativeConnection.connect(connectionOptions(withoutClientCert()))).rejects.toThrow(WORKER_REFUSED);
      expect(await front.errorLog()).toContain('client sent no required SSL certificate');
    });

    it('a runner without a client certificate does not start', async () => {
      await expect(
        startRunner(
          {
            infrastructureId: 'mtls-nocert',
            temporal: withoutClientCert(),
            dataDir: path.join(dir, 'runner-nocert'),
            localMachinesDir: path.join(dir, 'runner-nocert-machines'),
            gatewayAdminUrl: 'http://127.0.0.1:1',
            gatewayAdminToken: 'unused',
            installationId: 'mtls-test',
          },
          silentLogger,
        ),
      ).rejects.toThrow(WORKER_REFUSED);
      expect(await pollers(infrastructureTaskQueue('mtls-nocert'))).toBe(0);
    });

    it('a client certificate from another CA', async () => {
      const attacker = await createTestCa(dir, 'attacker-ca');
      const forged = await attacker.issue('forged-runner');
      const settings = readTemporalConnection({
        ...runnerEnv,
        TEMPORAL_TLS_CLIENT_CERT_PATH: forged.certFile,
        TEMPORAL_TLS_CLIENT_KEY_PATH: forged.keyFile,
      });
      await expect(refusedClient(settings)).rejects.toThrow(CLIENT_REFUSED);
      await expect(NativeConnection.connect(connectionOptions(settings))).rejects.toThrow(WORKER_REFUSED);
      expect(await front.errorLog()).toMatch(/client SSL certificate verify error|certificate verify failed/);
    });

    it('a plaintext connection to the TLS front', async () => {
      const plaintext = readTemporalConnection({ TEMPORAL_ADDRESS: front.address });
      expect(plaintext.tls).toBeUndefined();
      await expect(refusedClient(plaintext)).rejects.toThrow(CLIENT_REFUSED);
      await expect(NativeConnection.connect(connectionOptions(plaintext))).rejects.toThrow(WORKER_REFUSED);
    });
  });
});
