/**
 * The contract's `gcp` target: a runner with the real `@google-cloud/compute` client (REST transport) against the
 * in-repo fake of the Compute API on loopback, and the gitspace agent served on loopback (the fake's 10.x addresses
 * are never dialed).
 */
import { runAction, startAgentSlot } from './emulated-machine';
import { FAKE_FAULTS, startFakeComputeServer, type FakeComputeServer, type FakeRequest } from './fake-compute-server';
import {
  assemble,
  startCloudStack,
  type ContractEnvironment,
  type ContractTarget,
  type SeenDisk,
} from './provider-contract';
import { TEST_INSTALLATION_ID, waitForGitspace } from './stack';

const INFRA = 'gcp-lab';
const ZONE = 'europe-west1-b';
const PROJECT = 'acme-dev-123';
const ORPHAN_GRACE_SECONDS = 3;
const OPERATION_DELAY_MS = 100;

interface GcpEnvironment extends ContractEnvironment {
  fake: FakeComputeServer;
  /** The runner's agent endpoint, for a runner started by a case. */
  agentUrl: string;
  /** The insert requests that reached the fake for the gitspace. */
  insertsFor(gitspaceId: string): FakeRequest[];
}

const isInsert = (r: FakeRequest) => r.method === 'POST' && r.path.endsWith('/instances');

export const gcpOnFakeCompute: ContractTarget<GcpEnvironment> = {
  name: 'gcp on the fake Compute API',
  orphanGraceSeconds: ORPHAN_GRACE_SECONDS,

  start: ({ bundle }) =>
    assemble(async (closeLater) => {
      const fake = await startFakeComputeServer({ operationDelayMs: OPERATION_DELAY_MS });
      closeLater(() => fake.close());
      const stack = await startCloudStack(
        { bundle, orphanGraceSeconds: ORPHAN_GRACE_SECONDS },
        closeLater,
        {
          name: INFRA,
          provider: 'gcp',
          config: {
            project: PROJECT,
            region: 'europe-west1',
            zones: [ZONE],
            network: 'gitspaces',
            subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
            serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
            // The test's git server listens on loopback.
            repositoryNetworks: { allowLoopback: true },
          },
        },
        [
          { name: 'standard', machineType: 'e2-standard-4', diskSizeGb: 50 },
          // Valid in form, absent from the zone's catalogue.
          { name: 'imaginary', machineType: 'e2-imaginary-64', diskSizeGb: 50 },
        ],
      );

      const instancesOf = (gitspaceId: string) =>
        fake.instances().filter((i) => i.labels['gitspace-id'] === gitspaceId);
      const disksOf = (gitspaceId: string): SeenDisk[] =>
        fake
          .disks()
          .filter((d) => d.labels['gitspace-id'] === gitspaceId)
          .map((disk) => ({
            id: disk.name,
            sizeGb: disk.sizeGb,
            // A disk's users are the self links of the instances it is attached to.
            attachedTo: disk.users.map(
              (link) => fake.instances().find((i) => link.endsWith(`/zones/${i.zone}/instances/${i.name}`))?.id ?? link,
            ),
          }));
      const insertsFor = (gitspaceId: string) =>
        fake.requests.filter((r) => isInsert(r) && (r.body as { name?: string }).name === `gitspace-${gitspaceId}`);

      // The machine's agent runs with the secret in the startup script the runner gave the instance, as on GCE.
      const agent = await startAgentSlot(async (gitspaceId) => {
        const instance = instancesOf(gitspaceId)[0];
        return instance?.metadata.items.find((item) => item.key === 'startup-script')?.value;
      }, stack.dataDir);
      closeLater(() => agent.close());
      await stack.startRunner({ infrastructureId: INFRA, agentEndpoint: agent.url, gcpComputeEndpoint: fake.url });

      return {
        stack,
        fake,
        agentUrl: agent.url,
        insertsFor,
        infrastructureId: INFRA,
        machine: { name: 'standard', diskSizeGb: 50 },
        serve: (gitspaceId) => agent.serve(gitspaceId),
        routeTargetOf: async () => agent.url,
        cloud: {
          machinesOf: async (gitspaceId) =>
            instancesOf(gitspaceId).map((instance) => ({
              id: instance.id,
              state:
                ({ RUNNING: 'running', TERMINATED: 'stopped' } as Record<string, string>)[instance.status] ??
                instance.status,
              labels: instance.labels,
            })),
          disksOf: async (gitspaceId) => disksOf(gitspaceId),
          // The boot disk is named after the instance; the data disk has `-data` after that.
          dataDisksOf: async (gitspaceId) => disksOf(gitspaceId).filter((disk) => disk.id.endsWith('-data')),
          labelsFor: (gitspaceId) => ({ 'gitspace-id': gitspaceId, 'gitspaces-installation': TEST_INSTALLATION_ID }),
          createRequestsFor: (gitspaceId) => insertsFor(gitspaceId).length,
          plantMachine: (gitspaceId, installation) => plantInstance(fake, gitspaceId, installation),
          // The planted data disk is not auto-deleted, so it outlives its instance.
          planted: { disks: 2, dataDiskOutlivesMachine: true },
          settle: () => fake.settle(),
        },
      };
    }),

  quotaExceeded: {
    inject: ({ fake }) => fake.failNext(1, FAKE_FAULTS.quotaExceeded, isInsert),
    message: "Quota 'CPUS' exceeded",
  },
  unknownMachineType: { machine: 'imaginary', message: "Machine type with name 'e2-imaginary-64' does not exist" },

  specifics: {
    // gcp only: the instance's name, zone and machine type, and its data disk's name.
    async firstStart({ fake }, gitspaceId, machine, disk) {
      const instance = fake.instances().find((i) => i.id === machine.id);
      expect(instance).toMatchObject({ name: `gitspace-${gitspaceId}`, zone: ZONE, status: 'RUNNING' });
      expect(instance?.machineType).toMatch(/\/zones\/europe-west1-b\/machineTypes\/e2-standard-4$/);
      expect(disk.id).toBe(`gitspace-${gitspaceId}-data`);
    },
  },

  ownCases: [
    {
      title:
        'gcp only: hands the zone operation ensureMachine started to the runner that waits: its failure surfaces there, and a retry inserts anew',
      async run({ env, stoppedGitspace }) {
        const { stack, fake, insertsFor } = env;
        const id = await stoppedGitspace('handed-over');
        await env.serve(id);
        const first = stack.runner!;
        // Long enough that the insert is still running when its runner goes and another one takes the wait over.
        fake.setOperationDelay(6000);
        fake.failNextInsertOperation(
          'ZONE_RESOURCE_POOL_EXHAUSTED',
          `The zone '${ZONE}' does not have enough resources`,
        );
        try {
          const started = await stack.api('POST', `/api/v1/gitspaces/${id}/actions`, { action: 'start' });
          expect(started.status).toBe(202);
          await waitForGitspace(stack, id, (g) => g.operation?.step === 'waitForMachine');
          expect(insertsFor(id)).toHaveLength(1);
          await first.stop();
          await stack.startRunner({
            infrastructureId: INFRA,
            agentEndpoint: env.agentUrl,
            gcpComputeEndpoint: fake.url,
          });
          const failed = await waitForGitspace(stack, id, (g) => g.state === 'error', 60_000);
          // The second runner never saw the insert, yet it waited for that very operation and reports its error (not
          // "the machine disappeared").
          expect(failed.lastError).toMatchObject({
            action: 'start',
            step: 'waitForMachine',
            cause: 'CapacityUnavailableError',
          });
          expect(failed.lastError.message).toContain('ZONE_RESOURCE_POOL_EXHAUSTED');
        } finally {
          fake.setOperationDelay(OPERATION_DELAY_MS);
        }
        expect(await env.cloud.machinesOf(id)).toHaveLength(0);
        // A retry is a new request to Compute (a new request id), not the failed insert again.
        expect((await runAction(stack, id, 'retry')).state).toBe('running');
        expect(insertsFor(id)).toHaveLength(2);
        expect(new Set(insertsFor(id).map((r) => r.query.get('requestId'))).size).toBe(2);
        expect((await runAction(stack, id, 'delete')).state).toBe('deleted');
      },
    },
  ],
};

/** A labelled instance with a labelled data disk, inserted straight into the fake as a crashed or foreign control
 * plane leaves one. */
async function plantInstance(fake: FakeComputeServer, gitspaceId: string, installation: string): Promise<void> {
  const labels = { 'gitspace-id': gitspaceId, 'gitspaces-installation': installation };
  const name = `planted-${gitspaceId}`;
  const response = await fetch(`${fake.url}/compute/v1/projects/${PROJECT}/zones/${ZONE}/instances`, {
    method: 'POST',
    // The fake wants some bearer token, as the API does; an emulator run's is fixed.
    headers: { 'content-type': 'application/json', authorization: 'Bearer emulator' },
    body: JSON.stringify({
      name,
      machineType: `zones/${ZONE}/machineTypes/e2-small`,
      labels,
      disks: [
        { boot: true, autoDelete: true, initializeParams: { diskName: name, labels } },
        { boot: false, autoDelete: false, initializeParams: { diskName: `${name}-data`, labels } },
      ],
    }),
  });
  expect(response.status).toBe(200);
}
