/**
 * The resources as the API presents them: inferred from the API's own zod schemas (types only; nothing of the API is
 * bundled), so a renamed field fails the dashboard's type check instead of its users. Shapes the schemas do not hold
 * yet (the session, tokens, the list page) follow the dashboard contract (issue 14).
 */
import type { z } from 'zod';
import type {
  AccessGrant as AccessGrantSchema,
  CreatedUser as CreatedUserSchema,
  Event as EventSchema,
  Gitspace as GitspaceSchema,
  Infrastructure as InfrastructureSchema,
  InfrastructureWithRunners as InfrastructureWithRunnersSchema,
  Machine as MachineSchema,
  Operation as OperationSchema,
  Runner as RunnerSchema,
  User as UserSchema,
} from '../../../api/schemas';

export type Gitspace = z.infer<typeof GitspaceSchema>;
export type Operation = z.infer<typeof OperationSchema>;
export type GitspaceEvent = z.infer<typeof EventSchema>;
export type Infrastructure = z.infer<typeof InfrastructureSchema>;
export type InfrastructureWithRunners = z.infer<typeof InfrastructureWithRunnersSchema>;
export type Runner = z.infer<typeof RunnerSchema>;
export type Machine = z.infer<typeof MachineSchema>;
export type AccessGrant = z.infer<typeof AccessGrantSchema>;
/** `disabled` comes with PATCH /users/:id (issue 14). */
export type User = z.infer<typeof UserSchema> & { disabled?: boolean };
export type CreatedUser = z.infer<typeof CreatedUserSchema>;

export interface Items<T> {
  items: T[];
}

/** A page of GET /api/v1/gitspaces: pass `nextCursor` as `cursor` for the next one. */
export interface Page<T> extends Items<T> {
  nextCursor?: string;
}

/** GET /auth/options: which ways to sign in this installation offers. */
export interface SignInOptions {
  oidc: boolean;
  token: boolean;
  providerName?: string;
}

/** GET /api/v1/session. */
export interface Session {
  user: User;
  csrfToken: string;
  signIn: { oidc: boolean; token: boolean };
  /** The Temporal Web UI, for links to a gitspace's workflow runs. */
  temporalUiUrl?: string;
  /** The Temporal namespace of those runs; `default` when absent. */
  temporalNamespace?: string;
}

/** One of a user's API tokens (GET /api/v1/users/:id/tokens); never the token itself. */
export interface ApiToken {
  id: string;
  name?: string;
  createdAt: string;
  lastUsedAt?: string;
  expiresAt?: string;
}

/** POST /api/v1/users/:id/tokens: the new token, shown once. */
export interface CreatedToken {
  token: string;
  id?: string;
}
