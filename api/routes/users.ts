/** Users and their API tokens. Under /users/:id, `me` names the caller. */
import type { Request } from 'express';
import type { GitspaceState } from '../../contracts/lifecycle';
import type { UserRow } from '../../db/schema';
import type { Store } from '../../db/store';
import { defineRoute, type RouteServices } from '../route-table';
import {
  ApiToken,
  CreatedToken,
  CreatedUser,
  CreateTokenBody,
  CreateUserBody,
  ListUsersQuery,
  RemovedUser,
  UpdateUserBody,
  User,
  list,
} from '../schemas';
import { actorOf, managedUser, userOf } from './caller';
import { presentOperation, presentToken, presentUser } from './presenters';

/** The states in which a removed user's gitspace may still hold a machine, so a stop is asked for. */
const MAY_RUN: GitspaceState[] = ['running', 'starting', 'error'];

/** The user `:id` names (`me`: the caller), as an administrator sees them: NotFoundError when absent or removed. */
async function namedUser(req: Request, store: Store): Promise<UserRow> {
  const caller = userOf(req);
  const id = String(req.params.id);
  return id === 'me' || id === caller.id ? caller : store.getUser(id);
}

/** Asks for a stop of each of the user's gitspaces that may hold a machine, as `req`'s caller; none is lost. */
async function stopGitspacesOf(userId: string, req: Request, services: RouteServices) {
  const gitspaces = await services.store.listGitspaces({ ownerId: userId, states: MAY_RUN });
  const outcomes = await Promise.allSettled(
    gitspaces.map((gitspace) => services.lifecycle.request(gitspace.id, 'stop', actorOf(req))),
  );
  const stopped = [];
  const notStopped = [];
  for (const [index, outcome] of outcomes.entries()) {
    const { id, name, state } = gitspaces[index]!;
    if (outcome.status === 'fulfilled') {
      stopped.push({ id, name, operation: presentOperation(outcome.value) });
    } else {
      const reason = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
      services.logger.warn('could not stop a removed user’s gitspace', { userId, gitspaceId: id, reason });
      notStopped.push({ id, name, state, reason });
    }
  }
  return { stopped, notStopped };
}

export const userRoutes = [
  defineRoute({
    method: 'post',
    path: '/users',
    summary: 'Create a user and its API token (shown once); an e-mail invites them to sign in with it',
    access: 'admin',
    body: CreateUserBody,
    status: 201,
    response: CreatedUser,
    handle: async ({ body, services }) => {
      const { user, token } = await services.store.createUser(body.name, 'member', body.email ?? null);
      return { user: presentUser(user), token };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users',
    summary: 'List users (an administrator sees all, removed ones with include=deleted; others themselves)',
    access: 'user',
    query: ListUsersQuery,
    status: 200,
    response: list(User),
    handle: async ({ req, query, services }) => {
      const user = userOf(req);
      const users =
        user.role === 'admin'
          ? await services.store.listUsers({ includeRemoved: query.include === 'deleted' })
          : [user];
      return { items: users.map(presentUser) };
    },
  }),
  defineRoute({
    method: 'patch',
    path: '/users/:id',
    summary: 'Disable or enable a user, or change their role (not your own, nor the last active administrator)',
    access: 'admin',
    body: UpdateUserBody,
    status: 200,
    response: User,
    handle: async ({ req, body, services }) => {
      const user = await namedUser(req, services.store);
      return presentUser(await services.store.updateUser(user.id, body, userOf(req).id));
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/:id',
    summary:
      'Remove a user: refused everywhere at once, their tokens revoked, their gitspaces stopped (kept, for an administrator)',
    access: 'admin',
    status: 202,
    response: RemovedUser,
    handle: async ({ req, services }) => {
      const target = await namedUser(req, services.store);
      // Refused at once, before the stops (which may wait for a start to undo its work).
      const removed = await services.store.removeUser(target.id, userOf(req).id);
      return { user: presentUser(removed), ...(await stopGitspacesOf(removed.id, req, services)) };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/:id/tokens',
    summary: "List a user's API tokens (your own, or anyone's as an administrator); never the tokens themselves",
    access: 'user',
    status: 200,
    response: list(ApiToken),
    handle: async ({ req, services }) => {
      const owner = await managedUser(req, services.store);
      return { items: (await services.store.listTokens(owner.id)).map(presentToken) };
    },
  }),
  defineRoute({
    method: 'post',
    path: '/users/:id/tokens',
    summary: 'Create an API token (shown once); to rotate one, create its successor, then revoke it',
    access: 'user',
    quota: true,
    body: CreateTokenBody,
    status: 201,
    response: CreatedToken,
    handle: async ({ req, body, services }) => {
      const owner = await managedUser(req, services.store);
      const { token, ...created } = await services.store.createToken(owner.id, body.name ?? null);
      return { ...presentToken(created), token };
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/:id/tokens/:tokenId',
    summary: 'Revoke an API token at once (the one making this request too)',
    access: 'user',
    status: 204,
    handle: async ({ req, services }) => {
      const owner = await managedUser(req, services.store);
      await services.store.revokeToken(owner.id, String(req.params.tokenId));
    },
  }),
];
