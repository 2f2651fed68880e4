import type { TrustedProxies } from '../common/client-address';
import type { GatewayActivity } from './activity';
import type { Logger } from '../common/logger';
import type { UpstreamPool } from '../common/upstream-client';
import type { Connections } from './connections';
import type { TargetUrls } from './forwarding';
import type { GatewayMetrics } from './metrics';
import type { Refusals } from './refusals';
import type { RoutesStore } from './routes-store';
import type { Sessions } from './session';
import type { Tunnels } from './tunnels';

/** What the request and upgrade handlers of the public listener share, built once by `createGateway`. */
export interface GatewayParts {
  logger: Logger;
  routes: RoutesStore;
  sessions: Sessions;
  connections: Connections;
  tunnels: Tunnels;
  /** What the auto-stop reads of each gitspace's use (activity.ts). */
  activity: GatewayActivity;
  refusals: Refusals;
  metrics: GatewayMetrics;
  trusted: TrustedProxies;
  targets: TargetUrls;
  /** Upstream connections of forwarded HTTP requests (upgrades dial their own). */
  pool: UpstreamPool;
  /** Deadline for a machine's response headers. */
  timeoutMs: number;
  /** Host routing's `.<domain>` (routing.ts), when a domain is configured. */
  domainSuffix: string | undefined;
}
