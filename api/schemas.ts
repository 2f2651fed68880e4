import { z } from 'zod';
import {
  GITSPACE_STATES,
  LIFECYCLE_ACTIONS,
  OPERATION_STATUSES,
  TOKEN_REF_PATTERN,
  type GitspaceState,
} from '../contracts/lifecycle';
import { IDE_KINDS, PROVIDER_NAMES, SIMULATED_PROVIDER } from '../contracts/provider';
import { ALLOWED_REPOSITORY_SCHEMES } from '../agent/git';
import { RunnerPublicKey } from '../common/sealed-secret';
import {
  InvalidSshPublicKeyError,
  MAX_SSH_PUBLIC_KEY_BYTES,
  SSH_KEY_TYPES,
  parseOpenSshPublicKey,
} from '../common/ssh-public-key';
import { ACCESS_TOKEN_SCOPES } from '../contracts/access-token';

/**
 * One zod schema per request body and per resource: the API validates with them and the OpenAPI document is
 * generated from them, so the two cannot drift. Objects are strict: an unknown field is a 400, not silently dropped.
 */

const slug = (what: string) =>
  z
    .string()
    .min(1)
    .max(40)
    .regex(
      /^[a-z]([a-z0-9-]*[a-z0-9])?$/,
      `${what} must start with a letter and use lowercase letters, digits and dashes`,
    );

/** Display names: letters, digits, space, dot, dash, underscore; no path separators or control characters. */
const displayName = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/,
    'use letters, digits, spaces, dots, dashes and underscores (no slashes or control characters)',
  );

const httpUrl = z
  .string()
  .max(2048)
  .refine(
    (value) => {
      try {
        const url = new URL(value);
        return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
      } catch {
        return false;
      }
    },
    { error: 'must be an http:// or https:// URL', abort: true },
  )
  .regex(/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[^\s]*)?$/, 'must be an http:// or https:// URL with a host name')
  .transform((value) => value.replace(/\/+$/, ''));

/** Repository URLs: only network schemes. file://, ext:: or a local path would let a caller read the machine's disk. */
export const repositoryUrl = z
  .string()
  .min(1)
  .max(2048)
  // The specific explanation first; it stops the pattern (which documents the accepted form in OpenAPI) from
  // reporting the same problem again.
  .refine((value) => repositoryUrlProblem(value) === undefined, {
    error: (issue) => repositoryUrlProblem(String(issue.input)),
    abort: true,
  })
  .regex(
    /^(https?|ssh|git):\/\/([A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[^\s]*)?$/,
    'must be an https://, http://, ssh:// or git:// URL without a password',
  );

export function repositoryUrlProblem(value: string): string | undefined {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\s\0-\x1f\x7f]/.test(value)) return 'must not contain spaces or control characters';
  if (value.startsWith('-')) return 'must not start with a dash';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `must be a URL with one of the schemes ${ALLOWED_REPOSITORY_SCHEMES.map((s) => s.replace(':', '://')).join(', ')} (for git@host:org/repo use ssh://git@host/org/repo)`;
  }
  if (!(ALLOWED_REPOSITORY_SCHEMES as readonly string[]).includes(url.protocol)) {
    return `scheme '${url.protocol.replace(/:$/, '')}' is not supported; use one of ${ALLOWED_REPOSITORY_SCHEMES.map((s) => s.replace(':', '')).join(', ')}`;
  }
  if (!url.hostname) return 'must name a host';
  if ((url.protocol === 'https:' || url.protocol === 'http:') && url.password) {
    return 'must not carry a password; pass it as repository.token instead';
  }
  return undefined;
}

const branch = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$/,
    'must be a git branch name (letters, digits, . _ / -; not starting with a dash, no "..")',
  );

/**
 * An e-mail address as RFC 5321 limits it (a local part of at most 64 characters, a host name of dot-separated labels
 * of at most 63), by one documented pattern, so clients can check it as the API does.
 */
const emailAddress = z
  .string()
  .max(254)
  .regex(
    /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/,
    'must be an e-mail address (name@example.com)',
  );

export const CreateUserBody = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lowercase letters, digits, dots, dashes and underscores'),
  /** Invites the user: their first OpenID Connect sign-in with this verified address becomes them. */
  email: emailAddress.optional(),
});

const userRole = z.enum(['admin', 'member']);

export const UpdateUserBody = z
  .strictObject({ disabled: z.boolean().optional(), role: userRole.optional() })
  .refine((body) => body.disabled !== undefined || body.role !== undefined, 'give disabled, role or both');

/** GET /users: `include=deleted` lists removed users too. */
export const ListUsersQuery = z.strictObject({
  include: z.enum(['deleted']).optional().describe('`deleted` also lists removed users'),
});

export const CreateTokenBody = z.strictObject({ name: displayName.optional() });

/** An OpenSSH public key line, parsed (common/ssh-public-key.ts): the parser's reason is the field's message. */
const sshPublicKey = z
  .string()
  .max(MAX_SSH_PUBLIC_KEY_BYTES, 'is longer than 8 KiB')
  .transform((line, ctx) => {
    try {
      return parseOpenSshPublicKey(line);
    } catch (error) {
      if (!(error instanceof InvalidSshPublicKeyError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message });
      return z.NEVER;
    }
  })
  .describe(
    'One line of an OpenSSH public key file (~/.ssh/id_ed25519.pub): ed25519, ECDSA or RSA of 2048 bits or more',
  );

/** POST /users/:id/ssh-keys: `name` defaults to the key's comment. */
export const AddSshKeyBody = z.strictObject({ name: displayName.optional(), publicKey: sshPublicKey });

/** POST /gitspaces/:id/access: `browser` (no body) opens the IDE's pages; `ssh` the SSH tunnel. */
export const AccessBody = z.strictObject({ scope: z.enum(ACCESS_TOKEN_SCOPES).default('browser') });

/** Public keys of the infrastructure's runners (`x25519:…`, printed by a runner at start); tokens seal to the first. */
const runnerPublicKeys = z
  .array(
    z
      .string()
      .max(100)
      .refine(
        (value) => {
          try {
            RunnerPublicKey.parse(value);
            return true;
          } catch {
            return false;
          }
        },
        {
          error: "must be a runner public key: 'x25519:' and 32 bytes in base64url (a runner prints its own at start)",
        },
      ),
  )
  .min(1)
  .max(8)
  .refine((keys) => new Set(keys).size === keys.length, 'must not name a key twice');

/** An idle timeout or maximum lifetime in seconds (0: never; the API also holds it to GITSPACES_AUTO_STOP_MIN_SECONDS). */
const autoStopSeconds = z
  .number()
  .int()
  .min(0)
  .max(365 * 86400)
  .nullable();

/**
 * An auto-stop policy. On an infrastructure, the default of its gitspaces (null or 0: off). On a gitspace, its own
 * values: null gives back its infrastructure's, 0 means never. A field left out is unchanged.
 */
export const AutoStopSetting = z.strictObject({
  idleTimeoutSeconds: autoStopSeconds.optional(),
  maxLifetimeSeconds: autoStopSeconds.optional(),
});

export const CreateInfrastructureBody = z.strictObject({
  name: slug('name'),
  // `simulated` passes here and is refused by the config's validation unless the API was started for it.
  provider: z.enum([...PROVIDER_NAMES, SIMULATED_PROVIDER]),
  config: z.record(z.string(), z.unknown()).default({}),
  gatewayUrl: httpUrl,
  runnerPublicKeys: runnerPublicKeys.optional(),
  autoStop: AutoStopSetting.optional(),
});

export const UpdateInfrastructureBody = z
  .strictObject({
    config: z.record(z.string(), z.unknown()).optional(),
    gatewayUrl: httpUrl.optional(),
    runnerPublicKeys: runnerPublicKeys.optional(),
    autoStop: AutoStopSetting.optional(),
  })
  .refine(
    (body) => Object.values(body).some((value) => value !== undefined),
    'give config, gatewayUrl, runnerPublicKeys, autoStop or several',
  );

/** The largest warm pool a machine shape may have: each pooled machine is a stopped machine (and its disk) paid for. */
export const MAX_WARM_POOL_SIZE = 50;

export const CreateMachineBody = z.strictObject({
  name: slug('name'),
  machineType: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a machine type name'),
  diskSizeGb: z.number().int().min(10).max(65536),
  region: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9-]+$/)
    .optional(),
  zone: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9-]+$/)
    .optional(),
  image: z
    .string()
    .min(1)
    .max(300)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]*$/, 'must be an image name or id')
    .optional(),
  /** Stopped machines of this shape kept ready for first starts (workflows/warm-pool.ts); 0, the default: none. */
  warmPoolSize: z.number().int().min(0).max(MAX_WARM_POOL_SIZE).optional(),
});

export const CreateGitspaceBody = z.strictObject({
  name: displayName,
  repository: z.strictObject({
    url: repositoryUrl,
    branch: branch.optional(),
    token: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
      .optional(),
    // A token in the runner's own secret store, by name: it never passes through the control plane.
    tokenRef: z
      .string()
      .max(107)
      .regex(
        TOKEN_REF_PATTERN,
        "must be a secret name (letters, digits, '-', '_'; up to 100), in your own scope or after 'shared/'",
      )
      .optional(),
  }),
  infrastructureId: z.string().min(1).max(100),
  machineId: z.string().min(1).max(200),
  ide: z.enum(IDE_KINDS).default('terminal'),
  start: z.boolean().default(true),
  autoStop: AutoStopSetting.optional(),
});

/** PATCH /gitspaces/:id: what of a gitspace may change after its creation. */
export const UpdateGitspaceBody = z.strictObject({ autoStop: AutoStopSetting });

/** What of a machine may change (not its name, part of its id); null clears an optional one. */
export const UpdateMachineBody = z
  .strictObject({
    machineType: CreateMachineBody.shape.machineType.optional(),
    diskSizeGb: CreateMachineBody.shape.diskSizeGb.optional(),
    region: CreateMachineBody.shape.region.unwrap().nullable().optional(),
    zone: CreateMachineBody.shape.zone.unwrap().nullable().optional(),
    image: CreateMachineBody.shape.image.unwrap().nullable().optional(),
    warmPoolSize: CreateMachineBody.shape.warmPoolSize,
  })
  .refine((body) => Object.keys(body).length > 0, 'give machineType, diskSizeGb, region, zone, image or warmPoolSize');

export const ActionBody = z.strictObject({ action: z.enum(['start', 'stop', 'retry']) });

/** The largest page GET /gitspaces gives, and the one it gives when not asked for another. */
export const MAX_PAGE_SIZE = 200;
export const DEFAULT_PAGE_SIZE = 50;

const STATE_LIST = new RegExp(`^(${GITSPACE_STATES.join('|')})(,(${GITSPACE_STATES.join('|')}))*$`);

/** GET /gitspaces: which states, how many, and from where (the `nextCursor` of the page before). */
export const ListGitspacesQuery = z.strictObject({
  state: z
    .string()
    .regex(STATE_LIST, `must be one or more of ${GITSPACE_STATES.join(', ')}, separated by commas`)
    .transform((list) => [...new Set(list.split(','))] as GitspaceState[])
    .optional()
    .describe('Only gitspaces in these states (comma-separated); every state when absent'),
  limit: z
    .preprocess(
      (value) => (typeof value === 'string' && /^[0-9]{1,4}$/.test(value) ? Number(value) : value),
      z
        .number({ error: `must be a whole number from 1 to ${MAX_PAGE_SIZE}` })
        .int()
        .min(1)
        .max(MAX_PAGE_SIZE),
    )
    .optional()
    .describe(`How many gitspaces a page holds, 1 to ${MAX_PAGE_SIZE}; ${DEFAULT_PAGE_SIZE} when absent`),
  cursor: z.string().min(1).max(200).optional().describe("Where the page starts: the previous page's nextCursor"),
});

// Resources as the API returns them.

export const ErrorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    fields: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

export const User = z.object({
  id: z.string(),
  name: z.string(),
  role: userRole,
  /** The address the user was invited with. */
  email: z.string().optional(),
  /** Refused everywhere until an administrator enables them again. */
  disabled: z.boolean(),
  /** Removed (listed only with `include=deleted`): refused everywhere, their gitspaces kept. */
  deleted: z.boolean().optional(),
  createdAt: z.string(),
});
export const CreatedUser = z.object({ user: User, token: z.string() });

/** One of a user's API tokens: never the token itself. */
export const ApiToken = z.object({
  id: z.string(),
  name: z.string().optional(),
  createdAt: z.string(),
  lastUsedAt: z.string().optional(),
});
/** A new API token: `token` is shown this once. */
export const CreatedToken = ApiToken.omit({ lastUsedAt: true }).extend({ token: z.string() });

/** One of a user's SSH public keys. */
export const SshKey = z.object({
  id: z.string(),
  name: z.string(),
  type: z.enum(SSH_KEY_TYPES),
  /** `SHA256:…`, as `ssh-keygen -l` prints it. */
  fingerprint: z.string(),
  /** The key as one OpenSSH line. */
  publicKey: z.string(),
  createdAt: z.string(),
});

export const Infrastructure = z.object({
  id: z.string(),
  name: z.string(),
  provider: z.enum([...PROVIDER_NAMES, SIMULATED_PROVIDER]),
  config: z.record(z.string(), z.unknown()),
  gatewayUrl: z.string(),
  runnerPublicKeys: z.array(z.string()),
  /** How many live gitspaces hold a token sealed to each runner key (by key id): retire a key when its count is 0. */
  sealedTokens: z.record(z.string(), z.number()),
  /** The default auto-stop of its gitspaces (null: off). */
  autoStop: z
    .object({ idleTimeoutSeconds: z.number().nullable(), maxLifetimeSeconds: z.number().nullable() })
    .optional(),
  taskQueue: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** A runner polling an infrastructure's task queue, as Temporal last saw it. */
export const Runner = z.object({
  /** The worker identity it polls with (`<pid>@<host> gitspaces-runner/<version> contract/<n>`). */
  identity: z.string(),
  /** Its package version; absent for a runner from before runners named it. */
  version: z.string().optional(),
  /** The runner contract version it speaks; absent for a runner from before contract versions (version 1). */
  contractVersion: z.number().optional(),
  /** True when it speaks the contract version this control plane's operations need. */
  upToDate: z.boolean(),
  /** When it last polled the queue (Temporal lists pollers of the last few minutes). */
  lastAccessTime: z.string().optional(),
});

/** One infrastructure with its runners: those polling its task queue, and the contract version they must speak. */
export const InfrastructureWithRunners = Infrastructure.extend({
  /** The runner contract version this control plane's operations need (README: runner versions). */
  runnerContractVersion: z.number(),
  /** Absent when Temporal could not be asked. */
  runners: z.array(Runner).optional(),
});

export const Machine = z.object({
  id: z.string(),
  infrastructureId: z.string(),
  name: z.string(),
  machineType: z.string(),
  diskSizeGb: z.number(),
  region: z.string().optional(),
  zone: z.string().optional(),
  image: z.string().optional(),
  warmPoolSize: z.number(),
  /** Its pooled machines now: ready to claim, and being made. */
  warmPool: z.object({ ready: z.number(), preparing: z.number() }),
  createdAt: z.string(),
});

export const Operation = z.object({
  id: z.string(),
  action: z.enum(LIFECYCLE_ACTIONS),
  workflowId: z.string(),
  runId: z.string(),
  status: z.enum(OPERATION_STATUSES),
  step: z.string().optional(),
  createdAt: z.string(),
  finishedAt: z.string().optional(),
});

const effectiveSeconds = z.object({
  seconds: z.number().nullable(),
  source: z.enum(['gitspace', 'infrastructure', 'none']),
});

export const Gitspace = z.object({
  id: z.string(),
  name: z.string(),
  state: z.enum(GITSPACE_STATES),
  url: z.string().optional(),
  owner: z.string(),
  repository: z.object({
    url: z.string(),
    branch: z.string().optional(),
    hasToken: z.boolean(),
    tokenRef: z.string().optional(),
  }),
  infrastructureId: z.string(),
  machineId: z.string(),
  ide: z.enum(IDE_KINDS),
  lastError: z
    .object({ action: z.enum(LIFECYCLE_ACTIONS), step: z.string(), message: z.string(), cause: z.string().optional() })
    .optional(),
  operation: Operation.optional(),
  /** Its SSH host key (an OpenSSH public key line) for known_hosts; null until its agent published one at a start. */
  sshHostKey: z.string().nullable().optional(),
  /** Its effective auto-stop (seconds, null: never) and where each value comes from (absent from older servers). */
  autoStop: z.object({ idleTimeout: effectiveSeconds, maxLifetime: effectiveSeconds }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** DELETE /users/:id: the removed user, the gitspaces a stop was asked for, and those it could not be asked for. */
export const RemovedUser = z.object({
  user: User,
  stopped: z.array(z.object({ id: z.string(), name: z.string(), operation: Operation })),
  notStopped: z.array(
    z.object({ id: z.string(), name: z.string(), state: z.enum(GITSPACE_STATES), reason: z.string() }),
  ),
});

export const GitspaceWithOperation = z.object({ gitspace: Gitspace, operation: Operation.optional() });
export const OperationResponse = z.object({ operation: Operation });

/** Who asked for a change: a user, the reconciler, the auto-stop, or unknown with the reason (DESIGN.md §8). */
export const Actor = z.discriminatedUnion('type', [
  z.object({ type: z.literal('user'), id: z.string(), name: z.string() }),
  z.object({ type: z.literal('reconciler') }),
  z.object({ type: z.literal('auto-stop'), reason: z.enum(['idle', 'max-lifetime']).optional() }),
  z.object({ type: z.literal('unknown'), reason: z.string() }),
]);

export const Event = z.object({
  seq: z.number(),
  type: z.string(),
  state: z.string().optional(),
  message: z.string(),
  data: z.record(z.string(), z.unknown()),
  actor: Actor,
  createdAt: z.string(),
});

export const list = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

/** A page of gitspaces, newest first; `nextCursor` (as `cursor`) asks for the next one, absent on the last page. */
export const GitspacePage = z.object({ items: z.array(Gitspace), nextCursor: z.string().optional() });

/**
 * A gateway grant. Browser: `url` opens the IDE with the token. SSH: `url` is the tunnel's WebSocket (send the token as
 * a bearer) and `hostKey` the gitspace's SSH host key for known_hosts.
 */
export const AccessGrant = z.object({
  url: z.string(),
  token: z.string(),
  expiresAt: z.string(),
  hostKey: z.string().optional(),
});
export const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

// Signing in to the dashboard (api/routes/auth.ts, api/routes/session.ts).

/** POST /auth/token: an API token, traded for a session cookie. */
export const TokenSignInBody = z.strictObject({
  token: z
    .string()
    .min(1)
    .max(4096)
    .regex(/^[A-Za-z0-9._~+/=-]+$/, 'is not an API token'),
});

/** The ways to sign in this installation offers. */
export const SignInOptions = z.object({
  oidc: z.boolean(),
  token: z.boolean(),
  /** What the identity provider is called on the sign-in button. */
  providerName: z.string().optional(),
});

/** GET /api/v1/session. */
export const Session = z.object({
  user: User,
  /** Sent back as X-CSRF-Token on every POST, PATCH, PUT and DELETE the session makes. */
  csrfToken: z.string(),
  signIn: SignInOptions,
  /** The Temporal Web UI, for links to a gitspace's workflow runs. */
  temporalUiUrl: z.string().optional(),
  /** The Temporal namespace of those runs; `default` when absent. */
  temporalNamespace: z.string().optional(),
});
