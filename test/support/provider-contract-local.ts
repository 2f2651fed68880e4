/**
 * The contract's `local` target: the embedded `local` infrastructure and its runner, whose machines are directories
 * on this host with the agent in its sandbox on a loopback port. Its "cloud" is the host: a machine is its record,
 * its state whether an agent process serves its directory, its one disk the directory.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { silentLogger } from '../../common/logger';
import {
  agentProcessesIn,
  createLocalProvider,
  localMachinePaths,
  localMachinesRoot,
} from '../../providers/local/provider';
import { assemble, type ContractTarget, type SeenDisk, type SeenMachine } from './provider-contract';
import { TEST_INSTALLATION_ID, startTestStack } from './stack';

const ORPHAN_GRACE_SECONDS = 3;

/** The part of a local machine's record (providers/local/provider.ts) a test reads. */
interface LocalRecord {
  gitspaceId: string;
  createdAt: string;
  agent: { port: number } | null;
}

export const localOnThisHost: ContractTarget = {
  name: 'local on this host',
  orphanGraceSeconds: ORPHAN_GRACE_SECONDS,

  start: ({ bundle }) =>
    assemble(async (closeLater) => {
      const stack = await startTestStack({
        workflowBundle: bundle,
        runnerPickupTimeoutSeconds: 20,
        orphanGraceSeconds: ORPHAN_GRACE_SECONDS,
      });
      // Stopping the stack deletes every machine of its runner's root.
      closeLater(() => stack.stop());
      const root = localMachinesRoot(stack.dataDir);
      // Another installation on the same host keeps its machines under its own data dir.
      const foreignRoot = localMachinesRoot(`${stack.dataDir}-another-installation`);
      const foreign = createLocalProvider({ rootDir: foreignRoot, logger: silentLogger });
      closeLater(async () => {
        const options = { idempotencyKey: 'test-cleanup', signal: AbortSignal.timeout(30_000) };
        for (const machine of await foreign.list(options)) await foreign.delete(machine.gitspaceId, options);
        await rm(foreignRoot, { recursive: true, force: true });
      });

      const recordIn = async (rootDir: string, gitspaceId: string): Promise<LocalRecord | undefined> => {
        try {
          return JSON.parse(await readFile(localMachinePaths(rootDir, gitspaceId).record, 'utf8')) as LocalRecord;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw error;
        }
      };
      const machineIdOf = (rootDir: string, record: LocalRecord) => `${rootDir}#${record.createdAt}`;
      const machinesOf = async (gitspaceId: string): Promise<SeenMachine[]> => {
        const machines: SeenMachine[] = [];
        for (const rootDir of [root, foreignRoot]) {
          const record = await recordIn(rootDir, gitspaceId);
          if (!record) continue;
          const agents = await agentProcessesIn(localMachinePaths(rootDir, gitspaceId).dir);
          machines.push({
            id: machineIdOf(rootDir, record),
            state: agents.length > 0 ? 'running' : 'stopped',
            labels: { 'gitspace-id': record.gitspaceId },
          });
        }
        return machines;
      };
      const disksOf = async (gitspaceId: string): Promise<SeenDisk[]> => {
        const disks: SeenDisk[] = [];
        for (const rootDir of [root, foreignRoot]) {
          const { dir } = localMachinePaths(rootDir, gitspaceId);
          if (!(await stat(dir).catch(() => undefined))) continue;
          const record = await recordIn(rootDir, gitspaceId);
          disks.push({ id: dir, attachedTo: record ? [machineIdOf(rootDir, record)] : [] });
        }
        return disks;
      };

      return {
        stack,
        infrastructureId: 'local',
        machine: { name: 'default' },
        // The runner's provider starts the agent itself.
        serve: async (gitspaceId) => ({ workspaceDir: localMachinePaths(root, gitspaceId).workspace }),
        routeTargetOf: async (gitspaceId) => {
          const port = (await recordIn(root, gitspaceId))?.agent?.port;
          return port === undefined ? undefined : `http://127.0.0.1:${port}`;
        },
        cloud: {
          machinesOf,
          disksOf,
          // A local machine's one disk is its directory: workspace and home.
          dataDisksOf: disksOf,
          // A local machine carries no labels: its record names its gitspace, its root is its installation's.
          labelsFor: (gitspaceId) => ({ 'gitspace-id': gitspaceId }),
          plantMachine: async (gitspaceId, installation) => {
            const provider =
              installation === TEST_INSTALLATION_ID
                ? createLocalProvider({ rootDir: root, logger: silentLogger })
                : foreign;
            await provider.create(
              {
                gitspaceId,
                spec: { machineType: 'default', diskSizeGb: 10 },
                bootstrap: { agentSecret: randomBytes(16).toString('hex'), ide: 'terminal' },
              },
              { idempotencyKey: `plant-${gitspaceId}`, signal: AbortSignal.timeout(60_000) },
            );
          },
          planted: { disks: 1, dataDiskOutlivesMachine: false },
          settle: async () => undefined,
        },
      };
    }),
};
