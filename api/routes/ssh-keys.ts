/**
 * Users' SSH public keys, under /users/:id (`me`: the caller). An ssh access grant names the fingerprints of its
 * caller's keys, so adding or removing one takes effect at the next connection to any gitspace.
 */
import { defineRoute } from '../route-table';
import { AddSshKeyBody, SshKey, list } from '../schemas';
import { managedUser } from './caller';
import { presentSshKey } from './presenters';

export const sshKeyRoutes = [
  defineRoute({
    method: 'get',
    path: '/users/:id/ssh-keys',
    summary: "List a user's SSH public keys (your own, or anyone's as an administrator)",
    access: 'user',
    status: 200,
    response: list(SshKey),
    handle: async ({ req, services }) => {
      const owner = await managedUser(req, services.store);
      return { items: (await services.store.listSshKeys(owner.id)).map(presentSshKey) };
    },
  }),
  defineRoute({
    method: 'post',
    path: '/users/:id/ssh-keys',
    summary: 'Register an SSH public key: `gitspaces ssh` to any of your gitspaces then accepts its private key',
    access: 'user',
    quota: true,
    body: AddSshKeyBody,
    status: 201,
    response: SshKey,
    links: {
      RemoveSshKey: {
        operationId: 'deleteUsersByIdSshKeysByKeyId',
        parameters: { id: '$request.path.id', keyId: '$response.body#/id' },
      },
    },
    handle: async ({ req, body, services }) => {
      const owner = await managedUser(req, services.store);
      const { type, blob, comment, fingerprint } = body.publicKey;
      const row = await services.store.addSshKey(
        {
          userId: owner.id,
          name: body.name ?? (comment.slice(0, 100) || type),
          // Stored as parsed: one line, single spaces, no surrounding blanks.
          publicKey: [type, blob.toString('base64'), ...(comment ? [comment] : [])].join(' '),
          fingerprint,
        },
        { maxPerUser: services.limits.maxSshKeysPerUser },
      );
      return presentSshKey(row);
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/:id/ssh-keys/:keyId',
    summary: 'Remove an SSH public key: the next SSH connection with it is refused',
    access: 'user',
    status: 204,
    handle: async ({ req, services }) => {
      const owner = await managedUser(req, services.store);
      await services.store.removeSshKey(owner.id, String(req.params.keyId));
    },
  }),
];
