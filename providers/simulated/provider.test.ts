/**
 * The `simulated` provider: its machines' lifecycle, its agents' answers over real HTTP through the runner's own agent
 * client (activities/agent-client.ts), its config's validation, and the opt-in without which neither the runner nor
 * the API takes it.
 */
import { randomBytes } from 'node:crypto';
import { createAgentClient, AgentRequestError } from '../../activities/agent-client';
import { InputError } from '../../common/errors';
import { ROUTE_SECRET_HEADER } from '../../common/gateway-route';
import { silentLogger } from '../../common/logger';
import { InstanceNotFoundError, ProviderAuthError } from '../../contracts/provider-errors';
import type { MachineInfo, MachineStatus, Provider } from '../../contracts/provider';
import { startApiOnPglite } from '../../test/support/api-on-pglite';
import { createProviderResolver } from '../resolver';
import { SIMULATED_PROVIDER_REFUSED, validateInfrastructureConfig } from '../validation';
import { createSimulatedCloud, type SimulatedCloud } from './provider';

const call = () => ({ idempotencyKey: 'test', signal: AbortSignal.timeout(10_000) });
const bootstrap = () => ({ agentSecret: randomBytes(24).toString('base64url'), ide: 'terminal' as const });
const routeSecret = () => randomBytes(32).toString('base64url');
const repository = { url: 'https://git.example.test/org/repo.git' };
const agents = createAgentClient();
const signal = () => AbortSignal.timeout(10_000);

/**
 * Polls `describe` until the machine is in `status` (no assertion on how long it took); gives up after 20 s, far
 * beyond any boot the tests ask for, so a machine that never gets there fails its test instead of polling on.
 */
async function until(provider: Provider, gitspaceId: string, status: MachineStatus): Promise<MachineInfo> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const machine = await provider.describe(gitspaceId, call());
    if (machine?.status === status) return machine;
    if (Date.now() > deadline) throw new Error(`${gitspaceId} is ${machine?.status ?? 'gone'}, never ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('simulated provider', () => {
  let cloud: SimulatedCloud;
  beforeEach(() => {
    cloud = createSimulatedCloud({ logger: silentLogger });
  });
  afterEach(() => cloud.close());

  it('boots a machine whose agent answers as a real one: health, secret, workspace, route secret and host key', async () => {
    const provider = cloud.provider({ bootSeconds: 0.05 });
    const boot = bootstrap();
    const created = await provider.create(
      { gitspaceId: 'gs-a', spec: { machineType: 'any', diskSizeGb: 10 }, bootstrap: boot },
      call(),
    );
    expect(created).toMatchObject({ gitspaceId: 'gs-a', status: 'provisioning', labels: { 'gitspace-id': 'gs-a' } });
    expect(created.agentUrl).toBeUndefined();

    const running = await until(provider, 'gs-a', 'running');
    expect(running.providerId).toBe(created.providerId);
    const agentUrl = running.agentUrl!;
    expect(new URL(agentUrl).hostname).toBe('127.0.0.1');
    expect(await agents.health(agentUrl, signal())).toMatchObject({
      status: 'ok',
      gitspaceId: 'gs-a',
      workspace: 'empty',
    });
    expect(await agents.acceptsSecret(agentUrl, boot.agentSecret, signal())).toBe(true);
    expect(await agents.acceptsSecret(agentUrl, 'another-start', signal())).toBe(false);

    const request = { repository, repositoryNetworks: {} };
    expect(await agents.prepareWorkspace(agentUrl, boot.agentSecret, request, signal())).toEqual({
      clone: 'cloned',
      ranCommands: [],
    });
    expect(await agents.prepareWorkspace(agentUrl, boot.agentSecret, request, signal())).toEqual({
      clone: 'present',
      ranCommands: [],
    });
    await expect(agents.prepareWorkspace(agentUrl, 'wrong', request, signal())).rejects.toMatchObject({ status: 401 });

    // The IDE is the gateway's: nothing without the route secret, which only the agent secret's holder sets.
    expect((await fetch(`${agentUrl}/`)).status).toBe(401);
    const secret = routeSecret();
    await expect(agents.setRouteSecret(agentUrl, 'wrong', secret, signal())).rejects.toBeInstanceOf(AgentRequestError);
    expect((await fetch(`${agentUrl}/`, { headers: { [ROUTE_SECRET_HEADER]: secret } })).status).toBe(401);
    const { sshHostKey } = await agents.setRouteSecret(agentUrl, boot.agentSecret, secret, signal());
    expect(sshHostKey).toMatch(/^ssh-ed25519 /);
    expect((await fetch(`${agentUrl}/`, { headers: { [ROUTE_SECRET_HEADER]: secret } })).status).toBe(200);
    expect((await fetch(`${agentUrl}/`, { headers: { [ROUTE_SECRET_HEADER]: routeSecret() } })).status).toBe(401);
    const badRoute = await fetch(`${agentUrl}/_agent/route`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${boot.agentSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ secret: 'short' }),
    });
    expect(badRoute.status).toBe(400);
  });

  it('stops (the agent is gone, the disk and host key kept), starts with a new secret, and deletes', async () => {
    const provider = cloud.provider({ bootSeconds: 0 });
    const first = bootstrap();
    await provider.create(
      { gitspaceId: 'gs-b', spec: { machineType: 'any', diskSizeGb: 10 }, bootstrap: first },
      call(),
    );
    const before = await until(provider, 'gs-b', 'running');
    await agents.prepareWorkspace(
      before.agentUrl!,
      first.agentSecret,
      { repository, repositoryNetworks: {} },
      signal(),
    );
    const { sshHostKey } = await agents.setRouteSecret(before.agentUrl!, first.agentSecret, routeSecret(), signal());

    await provider.stop('gs-b', call());
    expect(await provider.describe('gs-b', call())).toMatchObject({ status: 'stopped', providerId: before.providerId });
    expect((await provider.describe('gs-b', call()))?.agentUrl).toBeUndefined();
    await expect(agents.health(before.agentUrl!, signal())).rejects.toThrow();
    await provider.stop('gs-b', call());

    const second = bootstrap();
    await provider.start('gs-b', second, call());
    const after = await until(provider, 'gs-b', 'running');
    expect(after.providerId).toBe(before.providerId);
    expect(await agents.acceptsSecret(after.agentUrl!, first.agentSecret, signal())).toBe(false);
    expect(await agents.acceptsSecret(after.agentUrl!, second.agentSecret, signal())).toBe(true);
    expect((await agents.health(after.agentUrl!, signal())).workspace).toBe('ready');
    expect(
      await agents.prepareWorkspace(
        after.agentUrl!,
        second.agentSecret,
        { repository, repositoryNetworks: {} },
        signal(),
      ),
    ).toEqual({ clone: 'present', ranCommands: [] });
    // The route secret went with the stopped agent: the IDE answers only once the new start sets one.
    expect(
      await fetch(`${after.agentUrl}/_agent/session`, {
        headers: { authorization: `Bearer ${second.agentSecret}` },
      }).then((r) => r.json()),
    ).toEqual({ gitspaceId: 'gs-b', routeSecretSet: false });
    expect((await agents.setRouteSecret(after.agentUrl!, second.agentSecret, routeSecret(), signal())).sshHostKey).toBe(
      sshHostKey,
    );

    expect((await provider.list(call())).map((m) => m.gitspaceId)).toEqual(['gs-b']);
    await provider.delete('gs-b', call());
    expect(await provider.describe('gs-b', call())).toBeNull();
    expect(await provider.list(call())).toEqual([]);
    await expect(agents.health(after.agentUrl!, signal())).rejects.toThrow();
    await provider.delete('gs-b', call());
    await expect(provider.start('gs-b', bootstrap(), call())).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  it('creates once per gitspace: a second create returns the same machine, a stop while booting wins', async () => {
    const provider = cloud.provider({ bootSeconds: 600 });
    const spec = { machineType: 'any', diskSizeGb: 10 };
    const one = await provider.create({ gitspaceId: 'gs-c', spec, bootstrap: bootstrap() }, call());
    const two = await provider.create({ gitspaceId: 'gs-c', spec, bootstrap: bootstrap() }, call());
    expect(two.providerId).toBe(one.providerId);
    expect((await provider.list(call())).length).toBe(1);
    await provider.stop('gs-c', call());
    expect((await provider.describe('gs-c', call()))?.status).toBe('stopped');
    // Another config of the same infrastructure (a PATCH) sees the same machines.
    expect(await cloud.provider({ bootSeconds: 1 }).describe('gs-c', call())).toMatchObject({
      providerId: one.providerId,
    });
  });
});

describe('simulated provider warm pools', () => {
  let cloud: SimulatedCloud;
  beforeEach(() => {
    cloud = createSimulatedCloud({ logger: silentLogger });
  });
  afterEach(() => cloud.close());

  const spec = { machineType: 'any', diskSizeGb: 10 };
  /** A pooled machine as the runner makes one: created under the warm key, then stopped. */
  async function pooled(provider: Provider, warmKey: string): Promise<MachineInfo> {
    await provider.create({ gitspaceId: warmKey, spec, bootstrap: bootstrap() }, call());
    await provider.stop(warmKey, call());
    return (await provider.describe(warmKey, call()))!;
  }

  it('adopt gives the pooled machine to the gitspace: found by its id only, and its agent answers as its own', async () => {
    const provider = cloud.provider({ bootSeconds: 0 });
    const warm = await pooled(provider, 'warm-k3v9x2m7q1wz');

    const adopted = await provider.adopt!('warm-k3v9x2m7q1wz', 'gs-w', call());
    expect(adopted).toMatchObject({
      gitspaceId: 'gs-w',
      providerId: warm.providerId,
      status: 'stopped',
      labels: { 'gitspace-id': 'gs-w' },
    });
    expect(await provider.describe('warm-k3v9x2m7q1wz', call())).toBeNull();
    expect(await provider.describe('gs-w', call())).toEqual(adopted);
    expect((await provider.list(call())).map((m) => [m.gitspaceId, m.providerId])).toEqual([['gs-w', warm.providerId]]);
    await expect(provider.start('warm-k3v9x2m7q1wz', bootstrap(), call())).rejects.toBeInstanceOf(
      InstanceNotFoundError,
    );
    await provider.delete('warm-k3v9x2m7q1wz', call());
    expect(await provider.describe('gs-w', call())).toEqual(adopted);

    const boot = bootstrap();
    await provider.start('gs-w', boot, call());
    const running = await until(provider, 'gs-w', 'running');
    expect(await agents.health(running.agentUrl!, signal())).toMatchObject({ status: 'ok', gitspaceId: 'gs-w' });
    expect(await agents.acceptsSecret(running.agentUrl!, boot.agentSecret, signal())).toBe(true);
    expect(
      await fetch(`${running.agentUrl}/_agent/session`, {
        headers: { authorization: `Bearer ${boot.agentSecret}` },
      }).then((r) => r.json()),
    ).toEqual({ gitspaceId: 'gs-w', routeSecretSet: false });
  });

  it('adopt again returns the same machine and changes nothing', async () => {
    const provider = cloud.provider({ bootSeconds: 0 });
    await pooled(provider, 'warm-again');
    const first = await provider.adopt!('warm-again', 'gs-again', call());
    const listed = await provider.list(call());
    const second = await provider.adopt!('warm-again', 'gs-again', call());
    expect(second).toEqual(first);
    expect(await provider.list(call())).toEqual(listed);
    expect(await provider.describe('warm-again', call())).toBeNull();
  });

  it('adopt for a gitspace that already has a machine returns that one and leaves the pooled machine alone', async () => {
    const provider = cloud.provider({ bootSeconds: 0 });
    const own = await provider.create({ gitspaceId: 'gs-own', spec, bootstrap: bootstrap() }, call());
    const warm = await pooled(provider, 'warm-spare');

    const adopted = await provider.adopt!('warm-spare', 'gs-own', call());
    expect(adopted).toEqual(await provider.describe('gs-own', call()));
    expect(adopted?.providerId).toBe(own.providerId);
    expect(await provider.describe('warm-spare', call())).toEqual(warm);
    expect((await provider.list(call())).map((m) => m.gitspaceId).sort()).toEqual(['gs-own', 'warm-spare']);
  });

  it('adopt of a pooled machine that is gone returns null and makes nothing', async () => {
    const provider = cloud.provider({ bootSeconds: 0 });
    expect(await provider.adopt!('warm-gone', 'gs-none', call())).toBeNull();
    expect(await provider.describe('gs-none', call())).toBeNull();
    expect(await provider.list(call())).toEqual([]);
  });

  it('starts a stopped machine in resumeSeconds and creates one in bootSeconds', async () => {
    const quickResume = cloud.provider({ bootSeconds: 600, resumeSeconds: 0 });
    await quickResume.create({ gitspaceId: 'gs-resume', spec, bootstrap: bootstrap() }, call());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await quickResume.describe('gs-resume', call()))?.status).toBe('provisioning');
    await quickResume.stop('gs-resume', call());
    await quickResume.start('gs-resume', bootstrap(), call());
    await until(quickResume, 'gs-resume', 'running');

    // Without resumeSeconds a start takes bootSeconds, as before it existed.
    await quickResume.stop('gs-resume', call());
    await cloud.provider({ bootSeconds: 600 }).start('gs-resume', bootstrap(), call());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await quickResume.describe('gs-resume', call()))?.status).toBe('provisioning');

    const slowResume = cloud.provider({ bootSeconds: 0, resumeSeconds: 600 });
    await slowResume.create({ gitspaceId: 'gs-slow', spec, bootstrap: bootstrap() }, call());
    await until(slowResume, 'gs-slow', 'running');
    await slowResume.stop('gs-slow', call());
    await slowResume.start('gs-slow', bootstrap(), call());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await slowResume.describe('gs-slow', call()))?.status).toBe('provisioning');
  });
});

describe('simulated provider config and opt-in', () => {
  it('validates bootSeconds and refuses unknown settings, naming each field', () => {
    const options = { simulatedProvider: true };
    expect(validateInfrastructureConfig('simulated', {}, options)).toEqual({ bootSeconds: 2 });
    expect(validateInfrastructureConfig('simulated', { bootSeconds: 0.5 }, options)).toEqual({ bootSeconds: 0.5 });
    const problems = (config: Record<string, unknown>) => {
      try {
        validateInfrastructureConfig('simulated', config, options);
      } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        return (error as InputError).fields?.map((f) => f.path);
      }
      throw new Error('accepted');
    };
    expect(problems({ bootSeconds: -1 })).toEqual(['config.bootSeconds']);
    expect(problems({ bootSeconds: '2' })).toEqual(['config.bootSeconds']);
    expect(problems({ bootSeconds: 601 })).toEqual(['config.bootSeconds']);
    expect(problems({ bootSecond: 2 })).toEqual(['config']);
  });

  it('takes resumeSeconds within the bounds of bootSeconds, and no default for it', () => {
    const options = { simulatedProvider: true };
    expect(validateInfrastructureConfig('simulated', { resumeSeconds: 0 }, options)).toEqual({
      bootSeconds: 2,
      resumeSeconds: 0,
    });
    expect(validateInfrastructureConfig('simulated', { bootSeconds: 90, resumeSeconds: 600 }, options)).toEqual({
      bootSeconds: 90,
      resumeSeconds: 600,
    });
    for (const resumeSeconds of [-1, 601, '2']) {
      let refused: unknown;
      try {
        validateInfrastructureConfig('simulated', { resumeSeconds }, options);
      } catch (error) {
        refused = error;
      }
      expect(refused).toBeInstanceOf(InputError);
      expect((refused as InputError).fields).toEqual([
        { path: 'config.resumeSeconds', message: expect.stringMatching(/.+/) },
      ]);
    }
  });

  it('is refused without the opt-in: by the validation, and by a runner that was not started for it', async () => {
    expect(() => validateInfrastructureConfig('simulated', { bootSeconds: 2 })).toThrow(SIMULATED_PROVIDER_REFUSED);
    const infrastructure = { provider: 'simulated' as const, providerConfig: { bootSeconds: 2 } };
    const plain = createProviderResolver({ localRoot: '/nonexistent', installationId: 'test', logger: silentLogger });
    expect(() => plain(infrastructure)).toThrow(ProviderAuthError);
    expect(() => plain(infrastructure)).toThrow(/GITSPACES_ENABLE_SIMULATED_PROVIDER=1/);
    const enabled = createProviderResolver({
      localRoot: '/nonexistent',
      installationId: 'test',
      logger: silentLogger,
      simulatedProvider: true,
    });
    try {
      expect(enabled(infrastructure).name).toBe('simulated');
      expect(() => enabled({ provider: 'simulated', providerConfig: { bootSeconds: -1 } })).toThrow(
        /config\.bootSeconds/,
      );
    } finally {
      await enabled.close();
    }
  });

  it('is taken by an API started for it, with its config checked', async () => {
    const api = await startApiOnPglite({ simulatedProvider: true });
    try {
      const infrastructure = (config: unknown) =>
        api.call('POST', '/infrastructures', api.adminToken, {
          name: 'bench',
          provider: 'simulated',
          config,
          gatewayUrl: 'http://127.0.0.1:3001',
        });
      expect((await infrastructure({ bootSeconds: -1 })).status).toBe(400);
      const created = await infrastructure({ bootSeconds: 0 });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ provider: 'simulated', config: { bootSeconds: 0 } });
    } finally {
      await api.close();
    }
  });

  it('attack: a normal API answers 400 to an infrastructure of the simulated provider and creates nothing', async () => {
    const api = await startApiOnPglite();
    try {
      const refused = await api.call('POST', '/infrastructures', api.adminToken, {
        name: 'sneaky',
        provider: 'simulated',
        config: { bootSeconds: 0 },
        gatewayUrl: 'http://127.0.0.1:3001',
      });
      expect(refused.status).toBe(400);
      expect(refused.body.error.fields).toEqual([expect.objectContaining({ path: 'provider' })]);
      const listed = await api.call('GET', '/infrastructures', api.adminToken);
      expect(listed.body.items.map((i: { name: string }) => i.name)).toEqual(['local']);
      expect(await api.store.listInfrastructures()).toHaveLength(1);
    } finally {
      await api.close();
    }
  });
});
