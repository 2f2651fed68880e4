/**
 * Every route, each defined once in the file of its resource. Adding a route is adding its definition there: the table
 * (api/route-table.ts) registers it, answers 405 for it and puts it in the OpenAPI document.
 */
import { authRoutes } from './auth';
import { autoStopRoutes } from './auto-stop';
import { cliLoginRoutes } from './cli-login';
import { eventRoutes } from './events';
import { gitspaceRoutes } from './gitspaces';
import { infrastructureRoutes } from './infrastructures';
import { machineRoutes } from './machines';
import { metaRoutes } from './meta';
import { serviceRoutes } from './service';
import { sessionRoutes } from './session';
import { sshKeyRoutes } from './ssh-keys';
import { userRoutes } from './users';

/** The routes under /api/v1, in the order the OpenAPI document and the Allow header list them. */
export const API_ROUTES = [
  ...metaRoutes,
  ...sessionRoutes,
  ...userRoutes,
  ...sshKeyRoutes,
  ...infrastructureRoutes,
  ...machineRoutes,
  ...gitspaceRoutes,
  ...autoStopRoutes,
  ...eventRoutes,
];

/** The routes at the root, outside the versioned API and its document (api/routes/service.ts, auth.ts, cli-login.ts). */
export const SERVICE_ROUTES = [...serviceRoutes, ...authRoutes, ...cliLoginRoutes];
