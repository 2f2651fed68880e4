import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { SignJWT, decodeProtectedHeader, errors, jwtVerify, type ProtectedHeaderParameters } from 'jose';
import type { GitspaceSpec, LifecycleAction } from '../contracts/lifecycle';
import { WARM_KEY_PATTERN, type MachineSpec } from '../contracts/provider';
import { readOrCreateSecretFile, replaceSecretFile } from './secret-file';

/**
 * Signed work orders (DESIGN.md §8, "Temporal is an untrusted courier"). The control plane signs each operation in
 * its first bookkeeping activity; the workflow passes the order to every infrastructure step; the runner verifies it
 * with the control plane's public key and checks it against the activity's own workflow run, the step and the spec in
 * the activity's input before it does anything. Whoever can schedule activities on the runner's queue (with or
 * without the payload keys) cannot make the runner act without an order the control plane signed for that very run.
 *
 * The key is the control plane's own Ed25519 work-order key, not the gateway access-token key: the access-token key's
 * public half is published (JWKS) for the gateway and the two kinds of token must never be taken for one another; the
 * keys rotate independently, and a runner needs this public key only.
 *
 * Rotation without downtime: every order names its key (`kid`, the RFC 7638 thumbprint of the public key) and a
 * runner trusts a set of public keys, the PEM blocks of GITSPACES_WORK_ORDER_PUBLIC_KEY or of
 * `<dataDir>/work-order-public-key.pem` (one block, as every earlier version wrote it, or several). An operator adds
 * the new public key to the runners' set, switches the control plane to the new private key, and removes the old
 * public key once no order signed with it is still in use. An order naming a key outside the set is refused
 * (UntrustedWorkOrderKeyError), and an order is checked with the key it names only.
 */

/**
 * File names in the data dir: the control plane's private key (0600), and the public keys a runner there trusts: one
 * PEM block or several, the control plane's current key always among them (it adds it when it starts with a new key).
 */
export const WORK_ORDER_KEY_FILE = 'work-order-key.pem';
export const WORK_ORDER_PUBLIC_KEY_FILE = 'work-order-public-key.pem';

export const WORK_ORDER_ALGORITHM = 'EdDSA';
export const WORK_ORDER_ISSUER = 'gitspaces-control-plane';
export const WORK_ORDER_AUDIENCE = 'gitspaces-runner';
/** The JWS `typ`: a gateway access token (typ JWT, another key anyway) is never a work order. */
export const WORK_ORDER_TYPE = 'gitspaces-work-order+jwt';

/**
 * How long an order is good for. It must outlive the longest operation its workflow can run, retries included (eight
 * 30-minute attempts of prepareWorkspace alone are four hours), or a late compensation would be refused and leave a
 * machine running. Replay into another run is stopped by the run binding, not by the expiry.
 */
export const LIFECYCLE_ORDER_TTL_SECONDS = 12 * 3600;
/** A reconciliation run's repairs: each may wait 5 minutes for a runner and take three 3-minute attempts. */
export const RECONCILE_ORDER_TTL_SECONDS = 6 * 3600;

/** `warm-pool`: one pooled machine of a warm pool's maintenance run (workflows/warm-pool.ts), by its warm key. */
export type WorkOrderAction = LifecycleAction | 'reconcile' | 'warm-pool';

/**
 * The runner contract (activity names, inputs, outputs between the control plane and a runner) this code speaks.
 * Version 1 is every runner before contract versions; 2 passes the cloud operation a step started (the GCP zone
 * operation) from step to step through the workflow's history; 3 makes and adopts warm pools' machines. A runner speaks
 * every version up to its own.
 */
export const RUNNER_CONTRACT_VERSION = 3;

/**
 * The contract version each kind of operation needs, signed into its work order (`cv`): a runner that speaks an older
 * one refuses the order at once (RunnerContractVersionError) instead of failing later, by timeout or by a field it does
 * not know. An order without `cv` (signed before contract versions) needs version 1.
 */
export const CONTRACT_VERSION_NEEDED: Record<WorkOrderAction, number> = {
  start: 2,
  stop: 2,
  delete: 2,
  reconcile: 1,
  // A start that claimed a pooled machine still runs on a version 2 runner: it ignores the claim and makes a machine.
  'warm-pool': 3,
};

const RUNNER_IDENTITY_TAG = 'gitspaces-runner';

/**
 * The worker identity a runner polls with: who it is and which versions it runs. Temporal lists it among the task
 * queue's pollers, and the API reads the versions back from it (GET /infrastructures/:id lists the runners).
 */
export function runnerIdentity(versions: { packageVersion: string; contractVersion: number }): string {
  return `${process.pid}@${hostname()} ${RUNNER_IDENTITY_TAG}/${versions.packageVersion} contract/${versions.contractVersion}`;
}

/** The versions a runner's identity names, or undefined for a poller that does not name them (an older runner). */
export function parseRunnerIdentity(identity: string): { version: string; contractVersion: number } | undefined {
  const match = new RegExp(`(?:^| )${RUNNER_IDENTITY_TAG}/(\\S+) contract/(\\d+)(?: |$)`).exec(identity);
  return match ? { version: match[1]!, contractVersion: Number(match[2]) } : undefined;
}

/** A runner that speaks an older contract version than the order needs: the runner must be upgraded. */
export class RunnerContractVersionError extends Error {
  constructor(
    readonly infrastructureId: string,
    readonly runnerVersion: number,
    readonly neededVersion: number,
  ) {
    super(
      `runner for infrastructure '${infrastructureId}' is version ${runnerVersion}, needs ${neededVersion}; upgrade it (runner contract version)`,
    );
    this.name = 'RunnerContractVersionError';
  }
}

/** The infrastructure steps that need an order (observeMachines is read-only and unsigned). */
export type OrderedStep =
  | 'ensureMachine'
  | 'waitForMachine'
  | 'waitForAgent'
  | 'prepareWorkspace'
  | 'registerRoute'
  | 'removeRoute'
  | 'stopMachine'
  | 'deleteMachine'
  | 'prepareWarmMachine';

/** Which steps each kind of order allows: a start's compensation removes its route and stops its machine. */
export const STEPS_ALLOWED: Record<WorkOrderAction, readonly OrderedStep[]> = {
  start: [
    'ensureMachine',
    'waitForMachine',
    'waitForAgent',
    'prepareWorkspace',
    'registerRoute',
    'removeRoute',
    'stopMachine',
  ],
  stop: ['removeRoute', 'stopMachine', 'waitForMachine'],
  delete: ['removeRoute', 'deleteMachine', 'waitForMachine'],
  reconcile: ['removeRoute', 'stopMachine', 'deleteMachine'],
  'warm-pool': ['prepareWarmMachine', 'deleteMachine'],
};

/** The repairs a reconcile order allows, by gitspace id. */
export interface ReconcileTargets {
  removeRoute: string[];
  stopMachine: string[];
  deleteMachine: string[];
}

/** The fields of a spec that say where the machines are: every order is bound to them. */
export type InfrastructurePart = Pick<GitspaceSpec, 'infrastructureId' | 'provider' | 'providerConfig'>;
/** The fields of a spec a start acts on beyond the infrastructure. */
export type WorkPart = Pick<GitspaceSpec, 'machine' | 'ide' | 'repository'>;

/** What the control plane orders: one operation of one workflow run. */
export interface WorkOrderRequest {
  action: WorkOrderAction;
  workflowId: string;
  runId: string;
  infrastructure: InfrastructurePart;
  /** Lifecycle orders: the gitspace and what its steps act on. */
  gitspaceId?: string;
  spec?: WorkPart;
  repositoryTokenSealed?: string;
  /** Reconcile orders: the repairs of this run. */
  targets?: ReconcileTargets;
  /** Start orders: the pooled machine (its warm key) the start claimed, the only one its runner may adopt. */
  warmMachine?: string;
  /** Warm-pool orders that make a machine: its shape. */
  machine?: MachineSpec;
}

/** What a verified order says. */
export interface WorkOrderClaims {
  action: WorkOrderAction;
  workflowId: string;
  runId: string;
  infrastructureId: string;
  gitspaceId?: string;
  /** Digests (sha256, base64url, of canonical JSON). */
  infrastructureDigest: string;
  specDigest?: string;
  tokenDigest?: string;
  targets?: ReconcileTargets;
  /** Start orders: the warm key of the pooled machine the start may adopt. */
  warmMachine?: string;
  /** Warm-pool orders that make a machine: the digest of its shape. */
  machineDigest?: string;
  /** The runner contract version the operation needs (1 for orders signed before contract versions). */
  contractVersion: number;
  expiresAt: number;
}

/** What the runner checks an order against: the activity's own run, its step and its input. */
export interface WorkOrderExpectation {
  step: OrderedStep;
  workflowId: string;
  runId: string;
  /** The infrastructure this runner serves. */
  infrastructureId: string;
  gitspaceId: string;
  /** The infrastructure part of the activity's input, when it has one. */
  infrastructure?: InfrastructurePart;
  /** The machine/ide/repository part, for steps that act on it. */
  spec?: WorkPart;
  /** Checked for prepareWorkspace: the sealed token in its input (or its absence). */
  repositoryTokenSealed?: string | null;
  /** Checked for ensureMachine: the pooled machine its input names for adoption (or its absence). */
  warmMachine?: string | null;
  /** Checked for prepareWarmMachine: the shape in its input. */
  machine?: MachineSpec;
}

/** Thrown when an order is missing, forged, expired, replayed from another run or does not match the input. */
export class WorkOrderRefusedError extends Error {
  constructor(readonly reason: string) {
    super(`work order refused: ${reason}`);
    this.name = 'WorkOrderRefusedError';
  }
}

/**
 * The order names a key this runner does not trust: signed by someone else, or by a key the operator removed from the
 * runner's set (after a rotation). A WorkOrderRefusedError, so the runner reports it as one (non-retryable).
 */
export class UntrustedWorkOrderKeyError extends WorkOrderRefusedError {
  constructor(
    /** The key id the order names, or undefined when it is not a readable key id. */
    readonly keyId: string | undefined,
    /** The key ids this runner trusts. */
    readonly trustedKeyIds: readonly string[],
    where: string,
  ) {
    super(
      `untrusted work order key: the work order is signed with ${keyId === undefined ? 'an unreadable key id' : `key '${keyId}'`}, which is not one of this runner's work order public keys (${trustedKeyIds.map((k) => `'${k}'`).join(', ')}) ${where}`,
    );
    this.name = 'UntrustedWorkOrderKeyError';
  }
}

/** JSON with object keys sorted, so the same value always gives the same digest. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}

export const infrastructureDigest = (i: InfrastructurePart): string =>
  digestOf({ infrastructureId: i.infrastructureId, provider: i.provider, providerConfig: i.providerConfig });
export const specDigest = (s: WorkPart): string =>
  digestOf({ machine: s.machine, ide: s.ide, repository: s.repository });
export const tokenDigest = (sealed: string | undefined | null): string => digestOf({ sealed: sealed ?? null });
export const machineDigest = (machine: MachineSpec): string => digestOf({ machine });

export interface WorkOrderSigner {
  sign(request: WorkOrderRequest): Promise<string>;
  /** The public key (SPKI PEM) runners verify with. */
  publicKeyPem: string;
  /** Its key id, named (`kid`) in every order this signer signs. */
  keyId: string;
}

/** A work-order key's id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of its public half, as for access tokens. */
export function workOrderKeyId(key: KeyObject): string {
  const { crv, kty, x } = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  // The thumbprint's members, in lexicographic order, no white space.
  return createHash('sha256').update(JSON.stringify({ crv, kty, x })).digest('base64url');
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/**
 * The public keys in `configured` (a file's content or GITSPACES_WORK_ORDER_PUBLIC_KEY), by key id: one PEM block or
 * several; text between blocks is ignored (RFC 7468), so `cat old.pem new.pem` and comments work. A private key, a
 * key that is not Ed25519 or no key at all is an InvalidWorkOrderKeyError naming `source`.
 */
export function parseWorkOrderPublicKeys(configured: string, source: string): Map<string, KeyObject> {
  // An environment variable may carry the PEM on one line, its line breaks written as \n.
  const text = configured.replace(/\\n/g, '\n');
  const keys = new Map<string, KeyObject>();
  for (const [block, label] of text.matchAll(PEM_BLOCK)) {
    if (label !== 'PUBLIC KEY') {
      throw new InvalidWorkOrderKeyError(
        source,
        `it holds a ${label} block; a runner is given the control plane's public key (BEGIN PUBLIC KEY) only`,
      );
    }
    const key = parseKey(block, source, 'public');
    keys.set(workOrderKeyId(key), key);
  }
  if (keys.size === 0) throw new InvalidWorkOrderKeyError(source, 'no PEM public key (BEGIN PUBLIC KEY) in it');
  return keys;
}

/** Thrown when the configured or stored work-order key is not an Ed25519 key. */
export class InvalidWorkOrderKeyError extends Error {
  constructor(source: string, reason: string) {
    super(`the work order key from ${source} is unusable: ${reason}`);
    this.name = 'InvalidWorkOrderKeyError';
  }
}

/**
 * The control plane's signer. The Ed25519 key comes from `privateKeyPem` (GITSPACES_WORK_ORDER_KEY) or from
 * `<dataDir>/work-order-key.pem`, generated (0600) on first use; its public half is added to
 * `<dataDir>/work-order-public-key.pem` for a runner that shares the data dir (the embedded stack), beside the keys
 * already there: after a switch to a new key, orders the old key signed for operations still under way keep being
 * accepted until the operator removes the old block. A runner elsewhere is given the public key
 * (GITSPACES_WORK_ORDER_PUBLIC_KEY).
 */
export async function createWorkOrderSigner(options: {
  dataDir?: string;
  privateKeyPem?: string;
  now?: () => number;
}): Promise<WorkOrderSigner> {
  let privateKey: KeyObject;
  if (options.privateKeyPem !== undefined) {
    privateKey = parseKey(options.privateKeyPem, 'configuration', 'private');
  } else if (options.dataDir !== undefined) {
    const file = path.join(options.dataDir, WORK_ORDER_KEY_FILE);
    const { value } = await readOrCreateSecretFile(file, () =>
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    );
    privateKey = parseKey(value, file, 'private');
  } else {
    throw new InvalidWorkOrderKeyError('options', 'dataDir or privateKeyPem is required');
  }
  const publicKeyPem = createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }).toString();
  const keyId = workOrderKeyId(privateKey);
  if (options.dataDir !== undefined) await publishPublicKey(options.dataDir, publicKeyPem, keyId);
  const now = options.now ?? Date.now;
  return {
    publicKeyPem,
    keyId,
    async sign(request) {
      const issuedAt = Math.floor(now() / 1000);
      const ttl = request.action === 'reconcile' ? RECONCILE_ORDER_TTL_SECONDS : LIFECYCLE_ORDER_TTL_SECONDS;
      if (request.action === 'warm-pool') {
        if (!WARM_KEY_PATTERN.test(request.gitspaceId ?? '')) throw new Error('a warm-pool order names a warm key');
      } else if (request.action !== 'reconcile' && (!request.gitspaceId || !request.spec)) {
        throw new Error('a lifecycle work order names its gitspace and spec');
      }
      const claims: Record<string, unknown> = {
        act: request.action,
        wf: request.workflowId,
        run: request.runId,
        infra_id: request.infrastructure.infrastructureId,
        infra: infrastructureDigest(request.infrastructure),
        cv: CONTRACT_VERSION_NEEDED[request.action],
        ...(request.gitspaceId ? { gs: request.gitspaceId } : {}),
        ...(request.spec ? { spec: specDigest(request.spec), tok: tokenDigest(request.repositoryTokenSealed) } : {}),
        ...(request.warmMachine ? { warm: request.warmMachine } : {}),
        ...(request.machine ? { mach: machineDigest(request.machine) } : {}),
        ...(request.action === 'reconcile'
          ? { targets: request.targets ?? { removeRoute: [], stopMachine: [], deleteMachine: [] } }
          : {}),
      };
      return new SignJWT(claims)
        .setProtectedHeader({ alg: WORK_ORDER_ALGORITHM, typ: WORK_ORDER_TYPE, kid: keyId })
        .setIssuer(WORK_ORDER_ISSUER)
        .setAudience(WORK_ORDER_AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + ttl)
        .sign(privateKey);
    },
  };
}

/**
 * Adds the control plane's public key to `<dataDir>/work-order-public-key.pem` unless it is there already (the file
 * is left alone then, whatever else it holds); the keys already there stay. Replaced whole (a runner may be reading
 * it). A file that holds no usable public key is an InvalidWorkOrderKeyError, not replaced: an
 * operator's edit went wrong, and the runner beside it would refuse everything.
 */
async function publishPublicKey(dataDir: string, publicKeyPem: string, keyId: string): Promise<void> {
  const file = path.join(dataDir, WORK_ORDER_PUBLIC_KEY_FILE);
  let existing: string | undefined;
  try {
    existing = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  let content = publicKeyPem;
  if (existing !== undefined && existing.trim() !== '') {
    if (parseWorkOrderPublicKeys(existing, file).has(keyId)) return;
    // Appended: the newest key is the last block.
    content = `${existing.trimEnd()}\n${publicKeyPem}`;
  }
  await replaceSecretFile(file, content);
}

export interface WorkOrderVerifier {
  /** The verified claims, or WorkOrderRefusedError naming why not. */
  verify(order: unknown, expected: WorkOrderExpectation): Promise<WorkOrderClaims>;
}

/**
 * The runner's verifier. It trusts the public keys in `publicKeyPem` (GITSPACES_WORK_ORDER_PUBLIC_KEY: one PEM block
 * or several) or, for a runner that shares the control plane's data dir, in `<dataDir>/work-order-public-key.pem`,
 * read at every check (the control plane may start after the runner, and a key the operator adds or removes there
 * counts from the next step on, without a restart). Without a key every order is refused. An order is checked with
 * the key its `kid` names, and refused when that key is not in the set; an order without a `kid` (signed by a version
 * before key ids, still under way across an upgrade) must verify with one of the keys.
 */
export function createWorkOrderVerifier(options: {
  publicKeyPem?: string;
  dataDir?: string;
  now?: () => number;
  /** The contract version this runner speaks; default RUNNER_CONTRACT_VERSION (tests act as older runners). */
  contractVersion?: number;
}): WorkOrderVerifier {
  const speaks = options.contractVersion ?? RUNNER_CONTRACT_VERSION;
  const configured =
    options.publicKeyPem !== undefined ? parseWorkOrderPublicKeys(options.publicKeyPem, 'configuration') : undefined;
  const now = options.now ?? Date.now;
  /** The file's keys, parsed again only when its content changed. */
  let fromFile: { text: string; keys: Map<string, KeyObject> } | undefined;
  const trustedKeys = async (): Promise<Map<string, KeyObject>> => {
    if (configured) return configured;
    if (options.dataDir !== undefined) {
      const file = path.join(options.dataDir, WORK_ORDER_PUBLIC_KEY_FILE);
      const text = await readFile(file, 'utf8').catch(() => undefined);
      if (text !== undefined) {
        // A file that holds no usable key is a configuration problem (InvalidWorkOrderKeyError, retried), not a refusal.
        if (fromFile?.text !== text) fromFile = { text, keys: parseWorkOrderPublicKeys(text, file) };
        return fromFile.keys;
      }
    }
    throw new WorkOrderRefusedError(
      "this runner has no work order public key (set GITSPACES_WORK_ORDER_PUBLIC_KEY to the control plane's)",
    );
  };

  return {
    async verify(order, expected) {
      const where = `(step ${expected.step} of gitspace '${expected.gitspaceId}')`;
      const refuse = (reason: string): never => {
        throw new WorkOrderRefusedError(`${reason} ${where}`);
      };
      if (typeof order !== 'string' || order === '') return refuse('the activity carries no work order');
      let header: ProtectedHeaderParameters;
      try {
        header = decodeProtectedHeader(order);
      } catch (error) {
        return refuse(`the work order is not valid (${(error as Error).message})`);
      }
      if (header.typ !== WORK_ORDER_TYPE || header.alg !== WORK_ORDER_ALGORITHM) {
        return refuse('the work order is not valid (not a work order: wrong type or algorithm)');
      }
      const keys = await trustedKeys();
      let candidates: KeyObject[];
      if (header.kid === undefined) {
        candidates = [...keys.values()];
      } else {
        const kid = header.kid;
        const key = keys.get(kid);
        if (!key) {
          // The id goes into a failure message that Temporal stores in plaintext: only a plausible thumbprint.
          const readable = /^[A-Za-z0-9_-]{1,64}$/.test(kid) ? kid : undefined;
          throw new UntrustedWorkOrderKeyError(readable, [...keys.keys()], where);
        }
        candidates = [key];
      }
      let payload: Record<string, unknown> | undefined;
      for (const key of candidates) {
        try {
          ({ payload } = await jwtVerify(order, key, {
            algorithms: [WORK_ORDER_ALGORITHM],
            issuer: WORK_ORDER_ISSUER,
            audience: WORK_ORDER_AUDIENCE,
            typ: WORK_ORDER_TYPE,
            currentDate: new Date(now()),
            clockTolerance: 30,
          }));
          break;
        } catch (error) {
          if (error instanceof errors.JWSSignatureVerificationFailed) continue;
          if (error instanceof errors.JWTExpired) return refuse('the work order has expired');
          return refuse(`the work order is not valid (${(error as Error).message})`);
        }
      }
      if (!payload) {
        return refuse(
          header.kid === undefined
            ? 'the work order is not signed by the control plane: no key of this runner verifies it'
            : `the work order is not signed by the control plane: its signature does not verify with the key it names ('${header.kid}')`,
        );
      }
      const claims: WorkOrderClaims = {
        action: payload.act as WorkOrderAction,
        workflowId: String(payload.wf),
        runId: String(payload.run),
        infrastructureId: String(payload.infra_id),
        infrastructureDigest: String(payload.infra),
        ...(typeof payload.gs === 'string' ? { gitspaceId: payload.gs } : {}),
        ...(typeof payload.spec === 'string' ? { specDigest: payload.spec } : {}),
        ...(typeof payload.tok === 'string' ? { tokenDigest: payload.tok } : {}),
        ...(payload.targets ? { targets: payload.targets as ReconcileTargets } : {}),
        ...(typeof payload.warm === 'string' ? { warmMachine: payload.warm } : {}),
        ...(typeof payload.mach === 'string' ? { machineDigest: payload.mach } : {}),
        contractVersion: typeof payload.cv === 'number' ? payload.cv : 1,
        expiresAt: Number(payload.exp),
      };
      if (claims.workflowId !== expected.workflowId || claims.runId !== expected.runId) {
        refuse(
          `the work order was signed for workflow run ${claims.workflowId}/${claims.runId}, not for this activity's run ${expected.workflowId}/${expected.runId}`,
        );
      }
      const allowed = STEPS_ALLOWED[claims.action];
      if (!allowed) refuse(`the work order names an unknown action '${String(claims.action)}'`);
      if (!allowed.includes(expected.step)) refuse(`a ${claims.action} order does not allow ${expected.step}`);
      if (claims.infrastructureId !== expected.infrastructureId) {
        refuse(`the work order is for infrastructure '${claims.infrastructureId}'`);
      }
      // Signed by the control plane for this run and this infrastructure: now its contract version counts.
      if (claims.contractVersion > speaks) {
        throw new RunnerContractVersionError(expected.infrastructureId, speaks, claims.contractVersion);
      }
      if (claims.action === 'reconcile') {
        const targets = claims.targets?.[expected.step as keyof ReconcileTargets] ?? [];
        if (!targets.includes(expected.gitspaceId)) {
          refuse(`the reconcile order does not name gitspace '${expected.gitspaceId}' for ${expected.step}`);
        }
      } else if (claims.gitspaceId !== expected.gitspaceId) {
        refuse(`the work order is for gitspace '${claims.gitspaceId}'`);
      }
      // A warm-pool order acts on pooled machines only, never on a gitspace's.
      if (claims.action === 'warm-pool' && !WARM_KEY_PATTERN.test(expected.gitspaceId)) {
        refuse(`a warm-pool order acts on warm keys only, not on '${expected.gitspaceId}'`);
      }
      if (expected.infrastructure && infrastructureDigest(expected.infrastructure) !== claims.infrastructureDigest) {
        refuse('the infrastructure in the input is not the one the work order was signed for');
      }
      if (expected.spec) {
        if (claims.action === 'reconcile' || specDigest(expected.spec) !== claims.specDigest) {
          refuse('the spec in the input is not the one the work order was signed for');
        }
      }
      if (expected.warmMachine !== undefined && (claims.warmMachine ?? null) !== expected.warmMachine) {
        refuse(
          expected.warmMachine === null
            ? 'the work order names a pooled machine the input does not'
            : `the work order does not give pooled machine '${expected.warmMachine}' to this start`,
        );
      }
      if (expected.machine !== undefined && machineDigest(expected.machine) !== claims.machineDigest) {
        refuse('the machine in the input is not the one the work order was signed for');
      }
      if (expected.repositoryTokenSealed !== undefined) {
        if (tokenDigest(expected.repositoryTokenSealed) !== claims.tokenDigest) {
          refuse('the repository token in the input is not the one the work order was signed for');
        }
      }
      return claims;
    },
  };
}

function parseKey(configured: string, source: string, kind: 'private' | 'public'): KeyObject {
  // An environment variable may carry the PEM on one line, its line breaks written as \n.
  const pem = configured.replace(/\\n/g, '\n');
  let key: KeyObject;
  try {
    key = kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (error) {
    throw new InvalidWorkOrderKeyError(source, `not a PEM ${kind} key (${(error as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new InvalidWorkOrderKeyError(source, `expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}
