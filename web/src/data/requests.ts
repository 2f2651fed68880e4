/**
 * Every call the dashboard makes to the control plane, by resource: the one place to read to know what the dashboard
 * needs from the API (docs: the dashboard contract of issue 14).
 */
import type { IdeKind, ProviderName } from '../../../contracts/provider';
import { api } from './client';
import type {
  AccessGrant,
  ApiToken,
  CreatedToken,
  CreatedUser,
  Gitspace,
  Infrastructure,
  InfrastructureWithRunners,
  Items,
  Machine,
  Operation,
  Page,
  Session,
  SignInOptions,
  User,
} from './types';

const id = encodeURIComponent;

export const auth = {
  options: () => api<SignInOptions>('/auth/options'),
  session: () => api<Session>('/api/v1/session'),
  signInWithToken: (token: string) => api<void>('/auth/token', { method: 'POST', body: { token } }),
  signOut: () => api<void>('/auth/logout', { method: 'POST' }),
  /** Where the browser goes to sign in at the identity provider, coming back to `returnTo`. */
  oidcLoginUrl: (returnTo: string) => `/auth/login?return_to=${encodeURIComponent(returnTo)}`,
};

export interface GitspaceQuery {
  states: readonly string[];
  limit: number;
  cursor?: string;
}

export interface NewGitspace {
  name: string;
  repository: { url: string; branch?: string; token?: string; tokenRef?: string };
  infrastructureId: string;
  machineId: string;
  ide: IdeKind;
  start: boolean;
}

export const gitspaces = {
  list: (query: GitspaceQuery, signal?: AbortSignal) => {
    const params = new URLSearchParams({ state: query.states.join(','), limit: String(query.limit) });
    if (query.cursor) params.set('cursor', query.cursor);
    return api<Page<Gitspace>>(`/api/v1/gitspaces?${params}`, { signal });
  },
  get: (gitspaceId: string, signal?: AbortSignal) => api<Gitspace>(`/api/v1/gitspaces/${id(gitspaceId)}`, { signal }),
  /** `idempotencyKey`: one per filled-in form, so a double submit or a retried request creates one gitspace. */
  create: (body: NewGitspace, idempotencyKey: string) =>
    api<{ gitspace: Gitspace; operation?: Operation }>('/api/v1/gitspaces', {
      method: 'POST',
      body,
      headers: { 'idempotency-key': idempotencyKey },
    }),
  act: (gitspaceId: string, action: 'start' | 'stop' | 'retry') =>
    api<{ operation: Operation }>(`/api/v1/gitspaces/${id(gitspaceId)}/actions`, { method: 'POST', body: { action } }),
  remove: (gitspaceId: string) =>
    api<{ operation: Operation }>(`/api/v1/gitspaces/${id(gitspaceId)}`, { method: 'DELETE' }),
  access: (gitspaceId: string) => api<AccessGrant>(`/api/v1/gitspaces/${id(gitspaceId)}/access`, { method: 'POST' }),
  /** Server-sent events: the gitspace's events from `Last-Event-ID` on, then live. */
  eventStreamUrl: (gitspaceId: string) => `/api/v1/gitspaces/${id(gitspaceId)}/events`,
  /** Server-sent events: every visible gitspace as it changes (event `gitspace`). */
  changesStreamUrl: '/api/v1/gitspaces/changes',
};

export interface InfrastructureInput {
  name: string;
  provider: ProviderName;
  config: Record<string, unknown>;
  gatewayUrl: string;
  runnerPublicKeys?: string[];
}

export type InfrastructureChanges = Partial<Pick<InfrastructureInput, 'config' | 'gatewayUrl' | 'runnerPublicKeys'>>;

export interface MachineInput {
  name: string;
  machineType: string;
  diskSizeGb: number;
  region?: string;
  zone?: string;
  image?: string;
  /** Stopped machines of this shape kept ready for first starts (aws and simulated); 0: none. */
  warmPoolSize?: number;
}

export const infrastructures = {
  list: (signal?: AbortSignal) => api<Items<Infrastructure>>('/api/v1/infrastructures', { signal }),
  get: (infrastructureId: string, signal?: AbortSignal) =>
    api<InfrastructureWithRunners>(`/api/v1/infrastructures/${id(infrastructureId)}`, { signal }),
  create: (body: InfrastructureInput) => api<Infrastructure>('/api/v1/infrastructures', { method: 'POST', body }),
  update: (infrastructureId: string, body: InfrastructureChanges) =>
    api<Infrastructure>(`/api/v1/infrastructures/${id(infrastructureId)}`, { method: 'PATCH', body }),
  remove: (infrastructureId: string) =>
    api<void>(`/api/v1/infrastructures/${id(infrastructureId)}`, { method: 'DELETE' }),
  machines: (infrastructureId: string, signal?: AbortSignal) =>
    api<Items<Machine>>(`/api/v1/infrastructures/${id(infrastructureId)}/machines`, { signal }),
  createMachine: (infrastructureId: string, body: MachineInput) =>
    api<Machine>(`/api/v1/infrastructures/${id(infrastructureId)}/machines`, { method: 'POST', body }),
  updateMachine: (infrastructureId: string, machineId: string, body: Partial<Omit<MachineInput, 'name'>>) =>
    api<Machine>(`/api/v1/infrastructures/${id(infrastructureId)}/machines/${id(machineId)}`, {
      method: 'PATCH',
      body,
    }),
  removeMachine: (infrastructureId: string, machineId: string) =>
    api<void>(`/api/v1/infrastructures/${id(infrastructureId)}/machines/${id(machineId)}`, { method: 'DELETE' }),
};

export const users = {
  list: (signal?: AbortSignal) => api<Items<User>>('/api/v1/users', { signal }),
  /** `email`: the invitation an OpenID Connect sign-in must match (GITSPACES_OIDC_SIGNUP=invite). */
  create: (name: string, email?: string) =>
    api<CreatedUser>('/api/v1/users', { method: 'POST', body: email ? { name, email } : { name } }),
  update: (userId: string, body: { disabled?: boolean; role?: User['role'] }) =>
    api<User>(`/api/v1/users/${id(userId)}`, { method: 'PATCH', body }),
  remove: (userId: string) => api<void>(`/api/v1/users/${id(userId)}`, { method: 'DELETE' }),
  tokens: (userId: string, signal?: AbortSignal) =>
    api<Items<ApiToken>>(`/api/v1/users/${id(userId)}/tokens`, { signal }),
  createToken: (userId: string) =>
    api<CreatedToken>(`/api/v1/users/${id(userId)}/tokens`, { method: 'POST', body: {} }),
  revokeToken: (userId: string, tokenId: string) =>
    api<void>(`/api/v1/users/${id(userId)}/tokens/${id(tokenId)}`, { method: 'DELETE' }),
};

/** GET /metrics: Prometheus text (admin). */
export const metricsText = (signal?: AbortSignal) => api<string>('/metrics', { text: true, signal });
