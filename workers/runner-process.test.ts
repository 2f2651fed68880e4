import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../common/logger';
import { localTemporal } from '../common/temporal-connection';
import { startRunner } from './runner-process';

describe('runner start', () => {
  it("refuses local machines inside the data dir, where a gitspace could reach the control plane's secrets", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-runner-'));
    try {
      await expect(
        startRunner(
          {
            infrastructureId: 'local',
            temporal: localTemporal('127.0.0.1:1'),
            dataDir,
            gatewayAdminUrl: 'http://127.0.0.1:1',
            installationId: 'test',
            localMachinesDir: path.join(dataDir, 'machines'),
          },
          silentLogger,
        ),
      ).rejects.toThrow(`the local machines dir ${path.join(dataDir, 'machines')} must not be inside the data dir`);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('with GITSPACES_LOCAL_SANDBOX=required, refuses to start where local gitspaces cannot be sandboxed', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-runner-'));
    const searchPath = process.env.PATH;
    process.env.PATH = path.join(dataDir, 'no-tools-here'); // no bubblewrap on this host
    try {
      await expect(
        startRunner(
          {
            infrastructureId: 'local',
            temporal: localTemporal('127.0.0.1:1'),
            dataDir,
            gatewayAdminUrl: 'http://127.0.0.1:1',
            installationId: 'test',
            localSandbox: 'required',
          },
          silentLogger,
        ),
      ).rejects.toThrow(
        'GITSPACES_LOCAL_SANDBOX=required, but local gitspaces cannot be sandboxed: bubblewrap (bwrap) is not installed',
      );
    } finally {
      process.env.PATH = searchPath;
      await rm(dataDir, { recursive: true, force: true });
      await rm(`${dataDir}-machines`, { recursive: true, force: true });
    }
  });
});
