/**
 * The process's own endpoints, outside /api/v1 and its document: liveness and readiness for orchestrators, and
 * Prometheus text for operators.
 */
import { defineRoute } from '../route-table';
import { METRICS_CONTENT_TYPE } from '../metrics';

export const serviceRoutes = [
  defineRoute({
    method: 'get',
    path: '/healthz',
    summary: 'The process is alive',
    access: 'public',
    status: 200,
    handle: async () => ({ status: 'ok' }),
  }),
  defineRoute({
    method: 'get',
    path: '/readyz',
    summary: 'The database and Temporal answer (503 with the reason when not)',
    access: 'public',
    status: 200,
    handle: async ({ res, services }) => {
      try {
        await services.ready();
        return { status: 'ready' };
      } catch (error) {
        res.status(503).json({ status: 'unavailable', reason: error instanceof Error ? error.message : String(error) });
        return undefined;
      }
    },
  }),
  // What reconciliation did, orphans, gitspaces by state, request and lifecycle durations; scraped with the admin token.
  defineRoute({
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    access: 'admin',
    status: 200,
    handle: async ({ res, services }) => {
      res.type(METRICS_CONTENT_TYPE).send(await services.metrics.render());
    },
  }),
];
