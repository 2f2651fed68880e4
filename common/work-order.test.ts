import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK } from 'jose';
import { createAccessTokenIssuer, ACCESS_TOKEN_KEY_FILE } from '../api/access-tokens';
import type { GitspaceSpec } from '../contracts/lifecycle';
import {
  CONTRACT_VERSION_NEEDED,
  InvalidWorkOrderKeyError,
  LIFECYCLE_ORDER_TTL_SECONDS,
  RUNNER_CONTRACT_VERSION,
  RunnerContractVersionError,
  UntrustedWorkOrderKeyError,
  WORK_ORDER_KEY_FILE,
  WORK_ORDER_PUBLIC_KEY_FILE,
  WORK_ORDER_TYPE,
  WorkOrderRefusedError,
  canonicalJson,
  createWorkOrderSigner,
  createWorkOrderVerifier,
  parseRunnerIdentity,
  parseWorkOrderPublicKeys,
  runnerIdentity,
  workOrderKeyId,
  type WorkOrderExpectation,
  type WorkOrderSigner,
  type WorkOrderVerifier,
} from './work-order';

const spec: GitspaceSpec = {
  gitspaceId: 'gs1',
  name: 'api',
  ownerId: 'u1',
  infrastructureId: 'local',
  infrastructureName: 'local',
  provider: 'local',
  providerConfig: { repositoryNetworks: { allowLoopback: true } },
  gatewayUrl: 'http://127.0.0.1:3001',
  machine: { machineType: 'local', diskSizeGb: 10 },
  ide: 'terminal',
  repository: { url: 'https://git.example/repo.git', branch: 'main' },
};
const run = { workflowId: 'gitspace-gs1', runId: 'run-1' };
const newPrivatePem = () =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

describe('work orders', () => {
  let dataDir: string;
  let now: number;
  let signer: WorkOrderSigner;
  let verifier: WorkOrderVerifier;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'work-order-'));
    now = Date.UTC(2026, 0, 1);
    signer = await createWorkOrderSigner({ dataDir, now: () => now });
    verifier = createWorkOrderVerifier({ dataDir, now: () => now });
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  /** A start order for gs1's run, by the data dir's signer unless another is given. */
  const startOrder = (overrides: Partial<Parameters<WorkOrderSigner['sign']>[0]> = {}, by: WorkOrderSigner = signer) =>
    by.sign({
      action: 'start',
      ...run,
      gitspaceId: 'gs1',
      infrastructure: spec,
      spec,
      repositoryTokenSealed: 'sealed-token',
      ...overrides,
    });
  const expectation = (overrides: Partial<WorkOrderExpectation> = {}): WorkOrderExpectation => ({
    step: 'prepareWorkspace',
    ...run,
    infrastructureId: 'local',
    gitspaceId: 'gs1',
    infrastructure: spec,
    spec,
    repositoryTokenSealed: 'sealed-token',
    ...overrides,
  });
  const refusal = async (order: unknown, expected: WorkOrderExpectation, v = verifier): Promise<string> => {
    const error = await v.verify(order, expected).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkOrderRefusedError);
    return (error as WorkOrderRefusedError).message;
  };

  it('keeps its Ed25519 key private in the data dir, publishes the public half, and reuses both', async () => {
    const keyFile = path.join(dataDir, WORK_ORDER_KEY_FILE);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(dataDir, WORK_ORDER_PUBLIC_KEY_FILE), 'utf8')).toBe(signer.publicKeyPem);
    expect(signer.publicKeyPem).toContain('BEGIN PUBLIC KEY');
    expect(await readFile(path.join(dataDir, WORK_ORDER_PUBLIC_KEY_FILE), 'utf8')).not.toContain('PRIVATE');
    const again = await createWorkOrderSigner({ dataDir });
    expect(again.publicKeyPem).toBe(signer.publicKeyPem);
    // Not the access-token key: a separate file, a separate key.
    await createAccessTokenIssuer({ dataDir, ttlSeconds: 60 });
    expect(await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8')).not.toBe(await readFile(keyFile, 'utf8'));
  });

  it('verifies an order for its own run, step, gitspace and spec', async () => {
    const order = await startOrder();
    const claims = await verifier.verify(order, expectation());
    expect(claims).toMatchObject({ action: 'start', ...run, gitspaceId: 'gs1', infrastructureId: 'local' });
    expect(claims.expiresAt).toBe(now / 1000 + LIFECYCLE_ORDER_TTL_SECONDS);
    // Steps that carry no token or only the infrastructure.
    await verifier.verify(order, expectation({ step: 'ensureMachine', repositoryTokenSealed: undefined }));
    await verifier.verify(order, { step: 'removeRoute', ...run, infrastructureId: 'local', gitspaceId: 'gs1' });
    // A start's compensation stops its machine.
    await verifier.verify(order, expectation({ step: 'stopMachine', spec: undefined }));
    // A gitspace without a token: the order says so, and a token added to the input is refused.
    const tokenless = await startOrder({ repositoryTokenSealed: undefined });
    await verifier.verify(tokenless, expectation({ repositoryTokenSealed: null }));
    expect(await refusal(tokenless, expectation())).toMatch(/repository token/);
  });

  it('names the contract version each operation needs; a runner that speaks an older one refuses at once, naming both', async () => {
    const order = await startOrder();
    expect((await verifier.verify(order, expectation())).contractVersion).toBe(CONTRACT_VERSION_NEEDED.start);
    const needed = CONTRACT_VERSION_NEEDED.start;
    const older = createWorkOrderVerifier({ dataDir, now: () => now, contractVersion: needed - 1 });
    const error = await older.verify(order, expectation()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunnerContractVersionError);
    expect((error as Error).message).toBe(
      `runner for infrastructure 'local' is version ${needed - 1}, needs ${needed}; upgrade it (runner contract version)`,
    );
    // A newer runner speaks the older contracts too.
    await createWorkOrderVerifier({ dataDir, now: () => now, contractVersion: needed + 1 }).verify(
      order,
      expectation(),
    );
    // An order signed before contract versions (no cv) needs version 1, which every runner speaks.
    const claims = JSON.parse(Buffer.from(order.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    delete claims.cv;
    const unversioned = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: WORK_ORDER_TYPE, kid: signer.keyId })
      .sign(createPrivateKey(await readFile(path.join(dataDir, WORK_ORDER_KEY_FILE), 'utf8')));
    expect((await older.verify(unversioned, expectation())).contractVersion).toBe(1);
    // The version is read only from an order the control plane signed: a forged one is refused for that, not "upgrade".
    const forged = await new SignJWT({ ...claims, cv: 99 })
      .setProtectedHeader({ alg: 'EdDSA', typ: WORK_ORDER_TYPE, kid: signer.keyId })
      .sign(createPrivateKey(newPrivatePem()));
    expect(await refusal(forged, expectation(), older)).toMatch(/not signed by the control plane/);
  });

  it('names the package and contract versions in a runner identity, and reads them back', () => {
    const identity = runnerIdentity({ packageVersion: '1.2.3', contractVersion: RUNNER_CONTRACT_VERSION });
    expect(identity).toMatch(
      new RegExp(`^${process.pid}@\\S+ gitspaces-runner/1.2.3 contract/${RUNNER_CONTRACT_VERSION}$`),
    );
    expect(parseRunnerIdentity(identity)).toEqual({ version: '1.2.3', contractVersion: RUNNER_CONTRACT_VERSION });
    // A runner from before versions polls with the SDK's default identity.
    expect(parseRunnerIdentity(`${process.pid}@host`)).toBeUndefined();
  });

  it('refuses a missing, malformed or forged order', async () => {
    expect(await refusal(undefined, expectation())).toMatch(/carries no work order/);
    expect(await refusal('', expectation())).toMatch(/carries no work order/);
    expect(await refusal({ action: 'start' }, expectation())).toMatch(/carries no work order/);
    expect(await refusal('not.a.jws', expectation())).toMatch(/not valid/);
    const attacker = await createWorkOrderSigner({ privateKeyPem: newPrivatePem(), now: () => now });
    const forged = await attacker.sign({ action: 'start', ...run, gitspaceId: 'gs1', infrastructure: spec, spec });
    expect(await refusal(forged, expectation())).toMatch(
      new RegExp(`signed with key '${attacker.keyId}', which is not one of this runner's work order public keys`),
    );
    await expect(verifier.verify(forged, expectation())).rejects.toBeInstanceOf(UntrustedWorkOrderKeyError);
    // The signature covers every claim: one changed character breaks it.
    const [header, payload, signature] = (await startOrder()).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const altered = Buffer.from(JSON.stringify({ ...claims, act: 'delete' })).toString('base64url');
    expect(await refusal(`${header}.${altered}.${signature}`, expectation({ step: 'deleteMachine' }))).toMatch(
      /not signed by the control plane: its signature does not verify/,
    );
  });

  it('refuses an expired order', async () => {
    const order = await startOrder();
    now += (LIFECYCLE_ORDER_TTL_SECONDS + 60) * 1000;
    expect(await refusal(order, expectation())).toMatch(/expired/);
  });

  it('refuses an order replayed into another run or workflow', async () => {
    const order = await startOrder();
    expect(await refusal(order, expectation({ runId: 'run-2' }))).toMatch(
      /signed for workflow run gitspace-gs1\/run-1/,
    );
    expect(await refusal(order, expectation({ workflowId: 'gitspace-gs2' }))).toMatch(/not for this activity's run/);
  });

  it('refuses a step the action does not allow', async () => {
    const start = await startOrder();
    expect(await refusal(start, expectation({ step: 'deleteMachine' }))).toMatch(/start order does not allow/);
    const stop = await startOrder({ action: 'stop' });
    expect(await refusal(stop, expectation({ step: 'deleteMachine' }))).toMatch(/stop order does not allow/);
    expect(await refusal(stop, expectation({ step: 'prepareWorkspace' }))).toMatch(/stop order does not allow/);
    expect(await refusal(stop, expectation({ step: 'ensureMachine' }))).toMatch(/stop order does not allow/);
    const del = await startOrder({ action: 'delete' });
    await verifier.verify(del, expectation({ step: 'deleteMachine', spec: undefined }));
    expect(await refusal(del, expectation({ step: 'ensureMachine' }))).toMatch(/delete order does not allow/);
  });

  it('refuses an order whose gitspace, infrastructure or spec differs from the input', async () => {
    const order = await startOrder();
    expect(await refusal(order, expectation({ gitspaceId: 'gs2' }))).toMatch(/for gitspace 'gs1'/);
    expect(await refusal(order, expectation({ infrastructureId: 'gcp' }))).toMatch(/infrastructure 'local'/);
    const alter = (change: Partial<GitspaceSpec>) => ({ ...spec, ...change });
    for (const altered of [
      alter({ repository: { url: 'https://attacker.example/repo.git', branch: 'main' } }),
      alter({ repository: { url: spec.repository.url } }),
      alter({ machine: { machineType: 'n2-standard-64', diskSizeGb: 10 } }),
      alter({ ide: 'vscode' as GitspaceSpec['ide'] }),
    ]) {
      expect(await refusal(order, expectation({ spec: altered }))).toMatch(/spec in the input/);
    }
    for (const altered of [
      alter({ providerConfig: { repositoryNetworks: { allowLoopback: true, allowPrivate: true } } }),
      alter({ provider: 'gcp' }),
    ]) {
      expect(await refusal(order, expectation({ infrastructure: altered }))).toMatch(/infrastructure in the input/);
    }
    expect(await refusal(order, expectation({ repositoryTokenSealed: 'another' }))).toMatch(/repository token/);
    expect(await refusal(order, expectation({ repositoryTokenSealed: null }))).toMatch(/repository token/);
  });

  it('limits a reconcile order to the repairs it names', async () => {
    const order = await signer.sign({
      action: 'reconcile',
      workflowId: 'reconcile-local',
      runId: 'r1',
      infrastructure: spec,
      targets: { removeRoute: ['gs1'], stopMachine: ['gs2'], deleteMachine: ['gs3'] },
    });
    const base = { workflowId: 'reconcile-local', runId: 'r1', infrastructureId: 'local', infrastructure: spec };
    await verifier.verify(order, { ...base, step: 'removeRoute', gitspaceId: 'gs1' });
    await verifier.verify(order, { ...base, step: 'stopMachine', gitspaceId: 'gs2' });
    await verifier.verify(order, { ...base, step: 'deleteMachine', gitspaceId: 'gs3' });
    expect(await refusal(order, { ...base, step: 'deleteMachine', gitspaceId: 'gs2' })).toMatch(/does not name/);
    expect(await refusal(order, { ...base, step: 'stopMachine', gitspaceId: 'gs9' })).toMatch(/does not name/);
    expect(await refusal(order, { ...base, step: 'ensureMachine', gitspaceId: 'gs2' })).toMatch(/does not allow/);
    expect(await refusal(order, { ...base, step: 'prepareWorkspace', gitspaceId: 'gs2', spec })).toMatch(
      /does not allow/,
    );
  });

  it('attack: a start adopts only the pooled machine its order names, and an order naming one needs an input that does', async () => {
    const ensure = (warmMachine: string | null) => expectation({ step: 'ensureMachine', warmMachine });
    const claimed = await startOrder({ warmMachine: 'warm-aaaaaaaaaaaa' });
    await verifier.verify(claimed, ensure('warm-aaaaaaaaaaaa'));
    expect(await refusal(claimed, ensure('warm-bbbbbbbbbbbb'))).toMatch(
      /does not give pooled machine 'warm-bbbbbbbbbbbb' to this start/,
    );
    expect(await refusal(claimed, ensure(null))).toMatch(/names a pooled machine the input does not/);
    const unclaimed = await startOrder();
    await verifier.verify(unclaimed, ensure(null));
    expect(await refusal(unclaimed, ensure('warm-aaaaaaaaaaaa'))).toMatch(/does not give pooled machine/);
  });

  it('attack: a warm-pool order makes the machine it names, of its shape, and never acts on a gitspace', async () => {
    const machine = { machineType: 'e2-small', diskSizeGb: 20 };
    const pool = { workflowId: 'warm-pool-local', runId: 'p1', infrastructureId: 'local', infrastructure: spec };
    const order = await signer.sign({
      action: 'warm-pool',
      workflowId: 'warm-pool-local',
      runId: 'p1',
      infrastructure: spec,
      gitspaceId: 'warm-aaaaaaaaaaaa',
      machine,
    });
    const claims = await verifier.verify(order, {
      ...pool,
      step: 'prepareWarmMachine',
      gitspaceId: 'warm-aaaaaaaaaaaa',
      machine,
    });
    expect(claims.contractVersion).toBe(CONTRACT_VERSION_NEEDED['warm-pool']);
    await verifier.verify(order, { ...pool, step: 'deleteMachine', gitspaceId: 'warm-aaaaaaaaaaaa' });
    expect(
      await refusal(order, {
        ...pool,
        step: 'prepareWarmMachine',
        gitspaceId: 'warm-aaaaaaaaaaaa',
        machine: { ...machine, image: 'attacker/image' },
      }),
    ).toMatch(/machine in the input is not the one/);
    expect(await refusal(order, { ...pool, step: 'deleteMachine', gitspaceId: 'warm-bbbbbbbbbbbb' })).toMatch(
      /for gitspace 'warm-aaaaaaaaaaaa'/,
    );
    for (const step of ['ensureMachine', 'stopMachine', 'prepareWorkspace', 'registerRoute'] as const) {
      expect(await refusal(order, { ...pool, step, gitspaceId: 'warm-aaaaaaaaaaaa' })).toMatch(/does not allow/);
    }
    // The control plane signs warm-pool orders for warm keys only; an order for a gitspace is refused by the runner too.
    await expect(
      signer.sign({ action: 'warm-pool', workflowId: 'w', runId: 'p1', infrastructure: spec, gitspaceId: 'gs1' }),
    ).rejects.toThrow(/names a warm key/);
    const [header, payload] = order.split('.');
    const forgedClaims = { ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), gs: 'gs1' };
    const forSigning = JSON.parse(Buffer.from(header!, 'base64url').toString());
    const resigned = await new SignJWT(forgedClaims)
      .setProtectedHeader(forSigning)
      .sign(createPrivateKey(await readFile(path.join(dataDir, WORK_ORDER_KEY_FILE), 'utf8')));
    expect(await refusal(resigned, { ...pool, step: 'deleteMachine', gitspaceId: 'gs1' })).toMatch(
      /acts on warm keys only, not on 'gs1'/,
    );
  });

  it('refuses everything without the public key, and never takes a gateway access token for an order', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'work-order-empty-'));
    try {
      const keyless = createWorkOrderVerifier({ dataDir: empty });
      expect(await refusal(await startOrder(), expectation(), keyless)).toMatch(/no work order public key/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    // An access token verified with the access-token key's own public half: wrong type and audience.
    const issuer = await createAccessTokenIssuer({ dataDir, ttlSeconds: 600 });
    const { token } = await issuer.issue({ userId: 'u1', gitspaceId: 'gs1', runId: 'run-1' });
    const accessKeyPem = createPublicKey(await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8'))
      .export({ format: 'pem', type: 'spki' })
      .toString();
    const confused = createWorkOrderVerifier({ publicKeyPem: accessKeyPem });
    expect(await refusal(token, expectation(), confused)).toMatch(/not valid/);
  });

  it('takes the public key from configuration and refuses a key that is not Ed25519', async () => {
    const configured = createWorkOrderVerifier({ publicKeyPem: signer.publicKeyPem, now: () => now });
    await configured.verify(await startOrder(), expectation());
    const oneLine = createWorkOrderVerifier({
      publicKeyPem: signer.publicKeyPem.trim().replace(/\n/g, '\\n'),
      now: () => now,
    });
    await oneLine.verify(await startOrder(), expectation());
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' });
    expect(() => createWorkOrderVerifier({ publicKeyPem: rsa.toString() })).toThrow(InvalidWorkOrderKeyError);
    await expect(createWorkOrderSigner({ privateKeyPem: 'garbage' })).rejects.toBeInstanceOf(InvalidWorkOrderKeyError);
  });

  describe('key rotation', () => {
    const signerOf = (privateKeyPem: string) => createWorkOrderSigner({ privateKeyPem, now: () => now });
    const orderBy = (s: WorkOrderSigner) => startOrder({}, s);
    /** The claims of a genuine order, signed by hand with the header fields given (the previous version set no kid). */
    const handSigned = async (privateKeyPem: string, header: { kid?: string }) => {
      const claims = JSON.parse(Buffer.from((await startOrder()).split('.')[1]!, 'base64url').toString());
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'EdDSA', typ: WORK_ORDER_TYPE, ...header })
        .sign(createPrivateKey(privateKeyPem));
    };
    const publicFile = () => path.join(dataDir, WORK_ORDER_PUBLIC_KEY_FILE);
    const withHeader = (order: string, change: (header: Record<string, unknown>) => Record<string, unknown>) => {
      const [header, payload, signature] = order.split('.');
      const changed = change(JSON.parse(Buffer.from(header!, 'base64url').toString()));
      return `${Buffer.from(JSON.stringify(changed)).toString('base64url')}.${payload}.${signature}`;
    };

    it('names its key in every order: the RFC 7638 thumbprint of the public key', async () => {
      const jwkThumbprint = await calculateJwkThumbprint(
        await exportJWK(createPrivateKey(await readFile(path.join(dataDir, WORK_ORDER_KEY_FILE), 'utf8'))),
      );
      expect(signer.keyId).toBe(jwkThumbprint);
      expect(workOrderKeyId(createPublicKey(signer.publicKeyPem))).toBe(jwkThumbprint);
      const header = JSON.parse(Buffer.from((await startOrder()).split('.')[0]!, 'base64url').toString());
      expect(header).toEqual({ alg: 'EdDSA', typ: WORK_ORDER_TYPE, kid: signer.keyId });
    });

    it('accepts orders of every key in its set: several PEM blocks in the variable or in the file', async () => {
      const next = await signerOf(newPrivatePem());
      const both = `${signer.publicKeyPem}${next.publicKeyPem}`;
      const fromVariable = createWorkOrderVerifier({ publicKeyPem: both, now: () => now });
      // On one line, as an environment variable may hold it.
      const oneLine = createWorkOrderVerifier({ publicKeyPem: both.trim().replace(/\n/g, '\\n'), now: () => now });
      await writeFile(publicFile(), `# old\n${signer.publicKeyPem}\n# new, ${next.keyId}\n${next.publicKeyPem}`);
      for (const v of [fromVariable, oneLine, verifier]) {
        expect((await v.verify(await startOrder(), expectation())).runId).toBe('run-1');
        expect((await v.verify(await orderBy(next), expectation())).runId).toBe('run-1');
      }
      expect([...parseWorkOrderPublicKeys(both, 'test').keys()]).toEqual([signer.keyId, next.keyId]);
    });

    it('refuses an order of a key removed from its set, from the next check on (no restart)', async () => {
      const next = await signerOf(newPrivatePem());
      await writeFile(publicFile(), `${signer.publicKeyPem}${next.publicKeyPem}`);
      const oldOrder = await startOrder();
      await verifier.verify(oldOrder, expectation());
      // The operator removes the old block.
      await writeFile(publicFile(), next.publicKeyPem);
      const error = await verifier.verify(oldOrder, expectation()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UntrustedWorkOrderKeyError);
      expect(error).toBeInstanceOf(WorkOrderRefusedError);
      expect(error).toMatchObject({ keyId: signer.keyId, trustedKeyIds: [next.keyId] });
      expect((error as Error).message).toBe(
        `work order refused: untrusted work order key: the work order is signed with key '${signer.keyId}', which is not one of this runner's work order public keys ('${next.keyId}') (step prepareWorkspace of gitspace 'gs1')`,
      );
      await verifier.verify(await orderBy(next), expectation());
      // The same with the variable: the new key only.
      const configured = createWorkOrderVerifier({ publicKeyPem: next.publicKeyPem, now: () => now });
      await expect(configured.verify(oldOrder, expectation())).rejects.toBeInstanceOf(UntrustedWorkOrderKeyError);
    });

    it('checks an order with the key its kid names only: a changed, swapped or removed kid is refused', async () => {
      const otherPem = newPrivatePem();
      const other = await signerOf(otherPem);
      await writeFile(publicFile(), `${signer.publicKeyPem}${other.publicKeyPem}`);
      const order = await startOrder();
      // The kid of the other trusted key on this order: the header is signed, and the other key does not verify it.
      expect(
        await refusal(
          withHeader(order, (h) => ({ ...h, kid: other.keyId })),
          expectation(),
        ),
      ).toMatch(new RegExp(`signature does not verify with the key it names \\('${other.keyId}'\\)`));
      // Signed by one trusted key, naming the other (hand-made, valid signature): checked with the named key only.
      expect(await refusal(await handSigned(otherPem, { kid: signer.keyId }), expectation())).toMatch(
        /signature does not verify with the key it names/,
      );
      // An unknown kid, and one that is no key id at all (not echoed into Temporal's plaintext failure).
      const unknown = await refusal(
        withHeader(order, (h) => ({ ...h, kid: 'A'.repeat(43) })),
        expectation(),
      );
      expect(unknown).toMatch(/untrusted work order key: the work order is signed with key 'A{43}'/);
      const junk = await refusal(
        withHeader(order, (h) => ({ ...h, kid: `x'${'y'.repeat(500)}` })),
        expectation(),
      );
      expect(junk).toMatch(/signed with an unreadable key id/);
      expect(junk).not.toContain('yyyy');
      // The kid removed: tried against every key, and the changed header verifies with none.
      expect(
        await refusal(
          withHeader(order, ({ kid: _kid, ...h }) => h),
          expectation(),
        ),
      ).toMatch(/not signed by the control plane: no key of this runner verifies it/);
      // A typ or alg that is not a work order's.
      expect(
        await refusal(
          withHeader(order, (h) => ({ ...h, typ: 'JWT' })),
          expectation(),
        ),
      ).toMatch(/not a work order/);
    });

    it('keeps a data dir of the previous version working: its key, its one-key file, its orders without kid', async () => {
      // What the previous version left: the private key and a file with its public half only.
      const legacyPem = newPrivatePem();
      const legacyDir = await mkdtemp(path.join(os.tmpdir(), 'work-order-legacy-'));
      try {
        await writeFile(path.join(legacyDir, WORK_ORDER_KEY_FILE), `${legacyPem}\n`, { mode: 0o600 });
        const publicPem = (await signerOf(legacyPem)).publicKeyPem;
        await writeFile(path.join(legacyDir, WORK_ORDER_PUBLIC_KEY_FILE), publicPem);
        const upgraded = await createWorkOrderSigner({ dataDir: legacyDir, now: () => now });
        expect(upgraded.publicKeyPem).toBe(publicPem);
        expect(await readFile(path.join(legacyDir, WORK_ORDER_PUBLIC_KEY_FILE), 'utf8')).toBe(publicPem);
        const runner = createWorkOrderVerifier({ dataDir: legacyDir, now: () => now });
        await runner.verify(await orderBy(upgraded), expectation());
        // An order the previous version signed (no kid), still under way across the upgrade.
        await runner.verify(await handSigned(legacyPem, {}), expectation());
        // Without kid, it must still verify with a key of the set.
        expect(await refusal(await handSigned(newPrivatePem(), {}), expectation(), runner)).toMatch(
          /no key of this runner verifies it/,
        );
      } finally {
        await rm(legacyDir, { recursive: true, force: true });
      }
    });

    it('a control plane switched to a new key adds its public half beside the old one; the operator removes the old', async () => {
      const oldOrder = await startOrder();
      // The operator gives the control plane a new key (here by replacing its file) and restarts it.
      await writeFile(path.join(dataDir, WORK_ORDER_KEY_FILE), newPrivatePem());
      const switched = await createWorkOrderSigner({ dataDir, now: () => now });
      expect(switched.keyId).not.toBe(signer.keyId);
      const file = await readFile(publicFile(), 'utf8');
      expect(file).toBe(`${signer.publicKeyPem}${switched.publicKeyPem}`);
      expect([...parseWorkOrderPublicKeys(file, 'test').keys()]).toEqual([signer.keyId, switched.keyId]);
      // Started again with the same key: the file is left as it is.
      await createWorkOrderSigner({ dataDir, now: () => now });
      expect(await readFile(publicFile(), 'utf8')).toBe(file);
      // The runner beside it, unchanged: the operation under way and the new ones.
      await verifier.verify(oldOrder, expectation());
      await verifier.verify(await orderBy(switched), expectation());
      // Once nothing signed with the old key runs, the operator removes its block (the first).
      await writeFile(publicFile(), switched.publicKeyPem);
      await expect(verifier.verify(oldOrder, expectation())).rejects.toBeInstanceOf(UntrustedWorkOrderKeyError);
      await verifier.verify(await orderBy(switched), expectation());
    });

    it('refuses a key set with a private key or no key, and a control plane will not overwrite a broken file', async () => {
      const privatePem = newPrivatePem();
      expect(() => createWorkOrderVerifier({ publicKeyPem: `${signer.publicKeyPem}${privatePem}` })).toThrow(
        /holds a PRIVATE KEY block/,
      );
      expect(() => createWorkOrderVerifier({ publicKeyPem: 'no key here' })).toThrow(InvalidWorkOrderKeyError);
      await writeFile(publicFile(), 'half an edit');
      await expect(verifier.verify(await startOrder(), expectation())).rejects.toBeInstanceOf(InvalidWorkOrderKeyError);
      await expect(createWorkOrderSigner({ dataDir })).rejects.toThrow(/no PEM public key/);
      expect(await readFile(publicFile(), 'utf8')).toBe('half an edit');
    });
  });

  it('digests canonical JSON: key order and undefined fields do not matter', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}',
    );
  });
});
