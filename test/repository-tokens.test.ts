import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RunnerKeyRing, RunnerPublicKey } from '../common/sealed-secret';
import { startGitHttpServer, type GitHttpServer } from './support/git-http-server';
import { startTestStack, waitForGitspace, type TestStack } from './support/stack';

/**
 * Repository tokens are the infrastructure's, not the control plane's (DESIGN.md §8): a token given to the API is
 * sealed to the runner's key and opens only there, for that gitspace; a token named by reference lives only in the
 * runner's secret store, in its owner's scope. Real parts: the whole stack, a git server that refuses clones without
 * the token, and the runner's file store.
 */
describe('repository tokens sealed to the infrastructure, or named in the runner secret store', () => {
  const token = `ghp_${Math.random().toString(36).slice(2)}${Date.now()}`;
  let stack: TestStack;
  let git: GitHttpServer;
  let tokensDir: string;
  const users: Record<'alice' | 'bob', { id: string; token: string }> = {} as never;

  const as = (who: 'alice' | 'bob') => ({
    api: (method: string, route: string, body?: unknown) => stack.api(method, route, body, users[who].token),
  });
  /** Asks for a gitspace of the private repository (on `local-default` unless `extra` says otherwise). */
  const post = (
    who: 'alice' | 'bob',
    name: string,
    repository: Record<string, string>,
    extra: Record<string, unknown> = {},
  ) =>
    as(who).api('POST', '/api/v1/gitspaces', {
      name,
      repository: { url: git.urlOf('private'), ...repository },
      infrastructureId: 'local',
      machineId: 'local-default',
      ...extra,
    });
  const create = async (who: 'alice' | 'bob', name: string, repository: Record<string, string>) => {
    const created = await post(who, name, repository);
    expect(created.status).toBe(201);
    return created.body.gitspace.id as string;
  };
  const settled = (g: any) => g.state === 'running' || g.state === 'error';
  const clonesWithToken = () => git.requests.filter((r) => r.path.includes('private') && r.authorized).length;

  beforeAll(async () => {
    git = await startGitHttpServer({ token });
    await git.createRepository('private', { 'README.md': '# private\n' });
    tokensDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-runner-tokens-'));
    stack = await startTestStack({ runner: false });
    await stack.startRunner({ secretStore: { kind: 'file', dir: tokensDir } });
    for (const name of ['alice', 'bob'] as const) {
      const user = await stack.api('POST', '/api/v1/users', { name });
      expect(user.status).toBe(201);
      users[name] = { id: user.body.user.id, token: user.body.token };
    }
    // The runner operator's store: alice's own token and a shared one; bob has none.
    await mkdir(path.join(tokensDir, 'users', users.alice.id), { recursive: true });
    await writeFile(path.join(tokensDir, 'users', users.alice.id, 'github'), `${token}\n`, { mode: 0o600 });
    await mkdir(path.join(tokensDir, 'shared'), { recursive: true });
    await writeFile(path.join(tokensDir, 'shared', 'deploy'), `${token}\n`, { mode: 0o600 });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await git?.stop();
    await rm(tokensDir, { recursive: true, force: true });
  }, 60_000);

  it('clones with a token sealed to the runner key, which the control plane keeps sealed', async () => {
    const before = clonesWithToken();
    const id = await create('alice', 'sealed', { token });
    expect((await waitForGitspace(stack, id, settled)).state).toBe('running');
    expect(clonesWithToken()).toBeGreaterThan(before);
    const stored = await stack.controlPlane.store.getGitspace(id);
    expect(stored.repositoryTokenSealed).toMatch(/^sealed:v2:/);
    expect(stored.repositoryTokenSealed).not.toContain(token);
    // The infrastructure says which runner key holds tokens, so an operator knows when an old key can go.
    const local = (await stack.api('GET', '/api/v1/infrastructures/local')).body;
    expect(local.sealedTokens).toEqual({ [RunnerPublicKey.parse(local.runnerPublicKeys[0]).keyId]: 1 });
  });

  it("clones with a token named in the owner's scope, and with a shared one, and the API never has it", async () => {
    for (const [name, tokenRef] of [
      ['by-ref', 'github'],
      ['by-shared-ref', 'shared/deploy'],
    ] as const) {
      const before = clonesWithToken();
      const id = await create('alice', name, { tokenRef });
      const gitspace = await waitForGitspace(stack, id, settled);
      expect([gitspace.state, gitspace.repository]).toEqual([
        'running',
        { url: git.urlOf('private'), hasToken: true, tokenRef },
      ]);
      expect(clonesWithToken()).toBeGreaterThan(before);
      const stored = await stack.controlPlane.store.getGitspace(id);
      expect(JSON.stringify(stored)).not.toContain(token);
    }
  });

  it("cannot name another user's token: bob's start fails on the step, and nothing is cloned with it", async () => {
    const before = clonesWithToken();
    const id = await create('bob', 'borrowed', { tokenRef: 'github' });
    const failed = await waitForGitspace(stack, id, settled);
    expect(failed.state).toBe('error');
    expect(failed.lastError.message).toMatch(/'github' is not in the runner's secret store/);
    expect(clonesWithToken()).toBe(before);
  });

  it('a sealed token moved onto another gitspace (a database attacker) does not open there', async () => {
    const victim = await create('alice', 'victim', { token });
    expect((await waitForGitspace(stack, victim, settled)).state).toBe('running');
    const thief = await create('bob', 'thief', {});
    await waitForGitspace(stack, thief, settled);
    const { repositoryTokenSealed } = await stack.controlPlane.store.getGitspace(victim);
    // Straight into the control plane's database: what someone with write access to it could do.
    await stack.controlPlane.store.db
      .updateTable('gitspaces')
      .set({ repositoryTokenSealed })
      .where('id', '=', thief)
      .execute();
    const before = clonesWithToken();
    // Its first start failed (the server wants a token); a retry clones again, now with the moved token.
    expect((await as('bob').api('POST', `/api/v1/gitspaces/${thief}/actions`, { action: 'retry' })).status).toBe(202);
    const failed = await waitForGitspace(
      stack,
      thief,
      (g) => g.state === 'error' && /does not open/.test(g.lastError?.message ?? ''),
    );
    expect(failed.lastError.message).toMatch(/does not open: it was altered, or sealed for another gitspace/);
    expect(clonesWithToken()).toBe(before);
  });

  it('refuses a token for an infrastructure without a runner key, and bad keys, with field errors', async () => {
    const infra = await stack.api('POST', '/api/v1/infrastructures', {
      name: 'nokey',
      provider: 'local',
      gatewayUrl: stack.gatewayUrl,
    });
    expect(infra.status).toBe(201);
    expect(infra.body.runnerPublicKeys).toEqual([]);
    const machine = await stack.api('POST', '/api/v1/infrastructures/nokey/machines', {
      name: 'm',
      machineType: 'local',
      diskSizeGb: 10,
    });
    expect(machine.status).toBe(201);
    const count = (await stack.controlPlane.store.listGitspaces({})).length;
    const onNokey = { infrastructureId: 'nokey', machineId: machine.body.id, start: false };
    const refused = await post('alice', 'nokey', { token }, onNokey);
    expect([refused.status, refused.body.error.fields]).toEqual([
      400,
      [{ path: 'repository.token', message: "infrastructure 'nokey' has no runner public key yet" }],
    ]);
    const both = await post('alice', 'both', { token, tokenRef: 'github' }, { start: false });
    expect([both.status, both.body.error.fields[0].path]).toEqual([400, 'repository.tokenRef']);
    const badRef = await post('alice', 'bad-ref', { tokenRef: '../../etc/passwd' }, { start: false });
    expect([badRef.status, badRef.body.error.fields[0].path]).toEqual([400, 'repository.tokenRef']);
    expect((await stack.controlPlane.store.listGitspaces({})).length).toBe(count);

    for (const runnerPublicKeys of [['x25519:short'], [RunnerKeyRing.generateKey()], []]) {
      const bad = await stack.api('PATCH', '/api/v1/infrastructures/nokey', { runnerPublicKeys });
      expect([bad.status, bad.body.error.fields[0].path]).toEqual([
        400,
        'runnerPublicKeys' + (runnerPublicKeys.length ? '.0' : ''),
      ]);
    }
    // Registered by an admin (a member may not), it takes tokens from then on.
    const key = RunnerKeyRing.parse(RunnerKeyRing.generateKey()).publicKeys()[0]!.toString();
    expect((await as('alice').api('PATCH', '/api/v1/infrastructures/nokey', { runnerPublicKeys: [key] })).status).toBe(
      403,
    );
    const registered = await stack.api('PATCH', '/api/v1/infrastructures/nokey', { runnerPublicKeys: [key] });
    expect([registered.status, registered.body.runnerPublicKeys]).toEqual([200, [key]]);
    const accepted = await post('alice', 'nokey', { token }, onNokey);
    expect(accepted.status).toBe(201);
  });
});
