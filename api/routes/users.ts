/** Users and their API tokens. */
import { defineRoute } from '../route-table';
import { CreatedUser, CreateUserBody, User, list } from '../schemas';
import { userOf } from './caller';
import { presentUser } from './presenters';

export const userRoutes = [
  defineRoute({
    method: 'post',
    path: '/users',
    summary: 'Create a user and its API token (shown once)',
    access: 'admin',
    body: CreateUserBody,
    status: 201,
    response: CreatedUser,
    handle: async ({ body, services }) => {
      const { user, token } = await services.store.createUser(body.name, 'member');
      return { user: presentUser(user), token };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users',
    summary: 'List users (an administrator sees all, others themselves)',
    access: 'user',
    status: 200,
    response: list(User),
    handle: async ({ req, services }) => {
      const user = userOf(req);
      const users = user.role === 'admin' ? await services.store.listUsers() : [user];
      return { items: users.map(presentUser) };
    },
  }),
];
