import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAccessTokenIssuer, ACCESS_TOKEN_KEY_FILE } from '../api/access-tokens';
import type { GitspaceSpec } from './lifecycle';
import {
  InvalidWorkOrderKeyError,
  LIFECYCLE_ORDER_TTL_SECONDS,
  WORK_ORDER_KEY_FILE,
  WORK_ORDER_PUBLIC_KEY_FILE,
  WorkOrderRefusedError,
  canonicalJson,
  createWorkOrderSigner,
  createWorkOrderVerifier,
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

  const startOrder = (overrides: Partial<Parameters<WorkOrderSigner['sign']>[0]> = {}) =>
    signer.sign({
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

  it('refuses a missing, malformed or forged order', async () => {
    expect(await refusal(undefined, expectation())).toMatch(/carries no work order/);
    expect(await refusal('', expectation())).toMatch(/carries no work order/);
    expect(await refusal({ action: 'start' }, expectation())).toMatch(/carries no work order/);
    expect(await refusal('not.a.jws', expectation())).toMatch(/not valid/);
    const attacker = await createWorkOrderSigner({
      privateKeyPem: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      now: () => now,
    });
    const forged = await attacker.sign({ action: 'start', ...run, gitspaceId: 'gs1', infrastructure: spec, spec });
    expect(await refusal(forged, expectation())).toMatch(/not signed by the control plane/);
    // The signature covers every claim: one changed character breaks it.
    const [header, payload, signature] = (await startOrder()).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const altered = Buffer.from(JSON.stringify({ ...claims, act: 'delete' })).toString('base64url');
    expect(await refusal(`${header}.${altered}.${signature}`, expectation({ step: 'deleteMachine' }))).toMatch(
      /not signed by the control plane/,
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
    const accessKeyPem = await readFile(path.join(dataDir, ACCESS_TOKEN_KEY_FILE), 'utf8');
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

  it('digests canonical JSON: key order and undefined fields do not matter', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}',
    );
  });
});
