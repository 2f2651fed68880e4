import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../common/logger';
import { agentProcessesIn, createLocalProvider } from './provider';

describe('local provider', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-local-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const options = () => ({ idempotencyKey: 'k', signal: AbortSignal.timeout(30_000) });
  const bootstrap = { agentSecret: 'secret', ide: 'terminal' as const };

  it('adopts an agent a crashed runner started but never recorded, instead of starting a second one', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger });
    const machine = await provider.create(
      { gitspaceId: 'gs-adopt', spec: { machineType: 'local', diskSizeGb: 10 }, bootstrap },
      options(),
    );
    const dir = path.join(root, 'gs-adopt');
    const [agent] = await agentProcessesIn(dir);
    expect(agent).toBeDefined();
    expect(machine.agentUrl).toBe(`http://127.0.0.1:${agent!.port}`);

    // What a runner killed between spawning the agent and writing machine.json leaves behind.
    const record = JSON.parse(await readFile(path.join(dir, 'machine.json'), 'utf8'));
    await writeFile(path.join(dir, 'machine.json'), JSON.stringify({ ...record, agent: null }));
    const again = await provider.create(
      { gitspaceId: 'gs-adopt', spec: { machineType: 'local', diskSizeGb: 10 }, bootstrap },
      options(),
    );
    expect(again.agentUrl).toBe(machine.agentUrl);
    expect((await agentProcessesIn(dir)).map((a) => a.pid)).toEqual([agent!.pid]);

    await provider.delete('gs-adopt', options());
    expect(await agentProcessesIn(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(await provider.describe('gs-adopt', options())).toBeNull();
  });

  it('stops the agent but keeps the workspace; stopping or deleting what is gone succeeds', async () => {
    const provider = createLocalProvider({ rootDir: root, logger: silentLogger });
    await provider.create(
      { gitspaceId: 'gs-stop', spec: { machineType: 'local', diskSizeGb: 10 }, bootstrap },
      options(),
    );
    await provider.stop('gs-stop', options());
    expect(await provider.describe('gs-stop', options())).toMatchObject({ status: 'stopped' });
    expect(await agentProcessesIn(path.join(root, 'gs-stop'))).toEqual([]);
    expect(existsSync(path.join(root, 'gs-stop'))).toBe(true);
    await provider.stop('gs-stop', options());
    await provider.delete('gs-stop', options());
    await provider.delete('gs-stop', options());
    await expect(provider.start('gs-stop', bootstrap, options())).rejects.toThrow(
      "no machine exists for gitspace 'gs-stop'",
    );
  });
});
