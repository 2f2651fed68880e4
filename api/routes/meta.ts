/** What the API says about itself: its OpenAPI document and the keys that verify its access tokens. */
import { defineRoute } from '../route-table';
import { Jwks } from '../schemas';

export const metaRoutes = [
  defineRoute({
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    access: 'public',
    status: 200,
    handle: async ({ services }) => services.openApiDocument(),
  }),
  // Public: the gateway verifies access tokens with these keys, without a call per request.
  defineRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    summary: 'Public keys that verify gateway access tokens',
    access: 'public',
    status: 200,
    response: Jwks,
    handle: async ({ res, services }) => {
      res.set('cache-control', 'public, max-age=300');
      return services.accessTokens.jwks();
    },
  }),
];
