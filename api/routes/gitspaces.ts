/** Gitspaces: creating them, their lifecycle actions, and opening one through the gateway. */
import { createHash } from 'node:crypto';
import { ACCESS_TOKEN_QUERY_PARAM } from '../../contracts/access-token';
import { ConflictError, InputError, NotFoundError } from '../../common/errors';
import { SSH_TUNNEL_PATH } from '../../common/gateway-route';
import { newId } from '../../common/ids';
import { RunnerPublicKey } from '../../common/sealed-secret';
import type { InfrastructureRow } from '../../db/schema';
import type { GitspacePosition } from '../../db/stores/gitspaces';
import { defineRoute } from '../route-table';
import {
  AccessBody,
  AccessGrant,
  ActionBody,
  CreateGitspaceBody,
  DEFAULT_PAGE_SIZE,
  Gitspace,
  GitspacePage,
  GitspaceWithOperation,
  ListGitspacesQuery,
  OperationResponse,
} from '../schemas';
import { actorOf, userOf } from './caller';
import { gitspaceChangesRoute } from './events';
import { autoStopColumns } from './auto-stop';
import { presentGitspaces, presentOperation } from './presenters';

/** From a created gitspace to the operations on it, so API clients and fuzzers can follow the id. */
const CREATED_GITSPACE_LINKS = {
  GetGitspace: { operationId: 'getGitspacesById', parameters: { id: '$response.body#/gitspace/id' } },
  ActOnGitspace: { operationId: 'postGitspacesByIdActions', parameters: { id: '$response.body#/gitspace/id' } },
  GitspaceEvents: { operationId: 'getGitspacesByIdEvents', parameters: { id: '$response.body#/gitspace/id' } },
  OpenGitspace: { operationId: 'postGitspacesByIdAccess', parameters: { id: '$response.body#/gitspace/id' } },
  DeleteGitspace: { operationId: 'deleteGitspacesById', parameters: { id: '$response.body#/gitspace/id' } },
};

export const gitspaceRoutes = [
  defineRoute({
    method: 'post',
    path: '/gitspaces',
    summary: 'Create a gitspace (and start it unless start is false)',
    access: 'user',
    quota: true,
    body: CreateGitspaceBody,
    status: 201,
    response: GitspaceWithOperation,
    links: CREATED_GITSPACE_LINKS,
    handle: async ({ req, res, body, services }) => {
      const { store } = services;
      if (body.repository.token !== undefined && body.repository.tokenRef !== undefined) {
        throw new InputError('give repository.token or repository.tokenRef, not both', [
          { path: 'repository.tokenRef', message: 'cannot be given with repository.token' },
        ]);
      }
      const infrastructure = await store.getInfrastructure(body.infrastructureId).catch((error: unknown) => {
        throw error instanceof NotFoundError
          ? new InputError(`infrastructure '${body.infrastructureId}' does not exist`, [
              { path: 'infrastructureId', message: 'does not exist' },
            ])
          : error;
      });
      const machine = await store.getMachine(body.machineId).catch((error: unknown) => {
        throw error instanceof NotFoundError
          ? new InputError(`machine '${body.machineId}' does not exist`, [
              { path: 'machineId', message: 'does not exist' },
            ])
          : error;
      });
      if (machine.infrastructureId !== infrastructure.id) {
        throw new InputError(
          `machine '${machine.id}' belongs to infrastructure '${machine.infrastructureId}', not '${infrastructure.id}'`,
          [{ path: 'machineId', message: `is not a machine of infrastructure '${infrastructure.id}'` }],
        );
      }
      const idempotencyKey = req.get('idempotency-key');
      if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
        throw new InputError('the Idempotency-Key header must be 1 to 255 printable characters without spaces', [
          { path: 'header.Idempotency-Key', message: 'must be 1 to 255 printable characters without spaces' },
        ]);
      }
      const gitspaceId = newId('gs');
      const { gitspace, replayed } = await store.createGitspace(
        {
          id: gitspaceId,
          name: body.name,
          ownerId: userOf(req).id,
          repositoryUrl: body.repository.url,
          repositoryBranch: body.repository.branch ?? null,
          repositoryTokenSealed: body.repository.token
            ? sealToInfrastructure(infrastructure, gitspaceId, body.repository.token)
            : null,
          repositoryTokenRef: body.repository.tokenRef ?? null,
          infrastructureId: infrastructure.id,
          machineId: machine.id,
          ide: body.ide,
          ...autoStopColumns(body.autoStop, services, 'autoStop'),
        },
        idempotencyKey === undefined
          ? undefined
          : { key: idempotencyKey, requestHash: createHash('sha256').update(JSON.stringify(req.body)).digest('hex') },
        { maxPerOwner: services.limits.maxGitspacesPerUser },
      );
      // A replayed request answers with the gitspace the first one made, and starts nothing again.
      const operation =
        body.start && !replayed ? await services.lifecycle.request(gitspace.id, 'start', actorOf(req)) : undefined;
      const [presented] = await presentGitspaces(store, [await store.getGitspace(gitspace.id)]);
      if (replayed) res.set('idempotent-replayed', 'true');
      return { gitspace: presented, ...(operation ? { operation: presentOperation(operation) } : {}) };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/gitspaces',
    summary:
      'List your gitspaces (an administrator sees all), newest first, a page at a time: follow nextCursor for the next',
    access: 'user',
    query: ListGitspacesQuery,
    status: 200,
    response: GitspacePage,
    handle: async ({ req, query, services }) => {
      const user = userOf(req);
      // Side by side: the page with each row's latest operation, and the infrastructures (their auto-stop defaults).
      const [{ rows, latestOperations, next }, infrastructures] = await Promise.all([
        services.store.pageGitspaces({
          ...(user.role === 'admin' ? {} : { ownerId: user.id }),
          ...(query.state ? { states: query.state } : {}),
          ...(query.cursor ? { after: decodePageCursor(query.cursor) } : {}),
          limit: query.limit ?? DEFAULT_PAGE_SIZE,
        }),
        services.store.listInfrastructures(),
      ]);
      return {
        items: await presentGitspaces(services.store, rows, { latestOperations, infrastructures }),
        ...(next ? { nextCursor: encodePageCursor(next) } : {}),
      };
    },
  }),
  gitspaceChangesRoute,
  defineRoute({
    method: 'get',
    path: '/gitspaces/:id',
    summary: 'Get a gitspace',
    access: 'user',
    gitspace: true,
    status: 200,
    response: Gitspace,
    handle: async ({ gitspace, services }) => (await presentGitspaces(services.store, [gitspace]))[0],
  }),
  defineRoute({
    method: 'post',
    path: '/gitspaces/:id/actions',
    summary: 'Start, stop or retry a gitspace',
    access: 'user',
    gitspace: true,
    body: ActionBody,
    status: 202,
    response: OperationResponse,
    handle: async ({ req, body, gitspace, services }) => {
      const operation = await services.lifecycle.request(gitspace.id, body.action, actorOf(req));
      return { operation: presentOperation(operation) };
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/gitspaces/:id',
    summary: 'Delete a gitspace (its record and events stay)',
    access: 'user',
    gitspace: true,
    status: 202,
    response: OperationResponse,
    handle: async ({ req, gitspace, services }) => {
      const operation = await services.lifecycle.request(gitspace.id, 'delete', actorOf(req));
      return { operation: presentOperation(operation) };
    },
  }),
  defineRoute({
    method: 'post',
    path: '/gitspaces/:id/access',
    summary:
      'A short-lived gateway URL and token for a running gitspace: its IDE by default, its SSH tunnel with scope ssh',
    access: 'user',
    gitspace: true,
    body: AccessBody,
    bodyOptional: true,
    status: 200,
    response: AccessGrant,
    handle: async ({ req, gitspace, services, body: { scope } }) => {
      if (gitspace.state !== 'running' || !gitspace.url) {
        throw new ConflictError(`gitspace '${gitspace.name}' is ${gitspace.state}; start it before opening it`);
      }
      // The token names the start that made the gitspace running: the next stop and start revoke it at the gateway.
      const started = (await services.store.latestOperations([gitspace.id])).get(gitspace.id);
      if (started?.action !== 'start' || started.status !== 'succeeded') {
        throw new ConflictError(`gitspace '${gitspace.name}' has no finished start to open`);
      }
      const subject = { userId: userOf(req).id, gitspaceId: gitspace.id, runId: started.runId };
      if (scope === 'browser') {
        const { token, expiresAt } = await services.accessTokens.issue(subject);
        const url = new URL(gitspace.url);
        url.searchParams.set(ACCESS_TOKEN_QUERY_PARAM, token);
        return { url: url.toString(), token, expiresAt };
      }
      // The caller's own keys, whoever owns the gitspace: the agent admits only the keys the token names.
      const sshKeys = await services.store.sshFingerprints(subject.userId);
      if (sshKeys.length === 0) {
        throw new ConflictError(
          'you have no SSH key registered; add your public key with: gitspaces ssh-keys add',
          'no_ssh_keys',
        );
      }
      if (!gitspace.sshHostKey) {
        throw new ConflictError(
          `gitspace '${gitspace.name}' has no SSH host key yet; restart it with an up-to-date runner`,
        );
      }
      const { token, expiresAt } = await services.accessTokens.issue({ ...subject, scope: 'ssh', sshKeys });
      return { url: sshTunnelUrl(gitspace.url), token, expiresAt, hostKey: gitspace.sshHostKey };
    },
  }),
];

/** The SSH tunnel's WebSocket URL under a gitspace's gateway URL (`…/gitspaces/<id>/`): http becomes ws. */
function sshTunnelUrl(gitspaceUrl: string): string {
  const url = new URL(SSH_TUNNEL_PATH.slice(1), gitspaceUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** A page's end as the client holds it: opaque, so clients pass it back rather than build one. */
function encodePageCursor(position: GitspacePosition): string {
  return Buffer.from(`${position.createdAtMicros}:${position.id}`).toString('base64url');
}

/**
 * The position a `nextCursor` names. Anything else is a 400: what it holds is checked as strictly as it is made, so
 * a forged one cannot reach the database as anything but a time and an id (and it only ever pages through the
 * gitspaces the caller may see).
 */
function decodePageCursor(cursor: string): GitspacePosition {
  const match = /^([0-9]{1,17}):([A-Za-z0-9][A-Za-z0-9_-]{0,127})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match || Buffer.from(match[0]).toString('base64url') !== cursor) {
    throw new InputError('cursor is not a nextCursor this API gave out', [
      { path: 'query.cursor', message: 'is not a nextCursor this API gave out' },
    ]);
  }
  return { createdAtMicros: match[1]!, id: match[2]! };
}

/**
 * Seals a repository token to the infrastructure's first runner key, bound to the gitspace: from here on only that
 * infrastructure's runners can open it, and the control plane cannot (common/sealed-secret.ts).
 */
function sealToInfrastructure(infrastructure: InfrastructureRow, gitspaceId: string, token: string): string {
  const [key] = infrastructure.runnerPublicKeys;
  if (!key) {
    throw new InputError(
      `infrastructure '${infrastructure.id}' has no runner public key, so a token cannot be sealed to it: an admin registers the key its runner prints at start (PATCH /infrastructures/${infrastructure.id} with runnerPublicKeys), or name a token in the runner's secret store with repository.tokenRef`,
      [{ path: 'repository.token', message: `infrastructure '${infrastructure.id}' has no runner public key yet` }],
    );
  }
  return RunnerPublicKey.parse(key).seal(token, { infrastructureId: infrastructure.id, gitspaceId });
}
