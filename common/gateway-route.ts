/**
 * The contract between the runner, the gateway and the gitspace agent about one gateway route (DESIGN.md §8: the
 * gateway is the only door into a machine).
 *
 * On every start the runner generates a random route secret, hands it to the agent (its private API) and registers
 * it with the gateway together with the target and the start's workflow run id. The gateway adds the secret to
 * everything it forwards, under ROUTE_SECRET_HEADER, after removing any such header a client sent; the agent answers
 * 401 to any request or upgrade without it (its health check aside). Access tokens name the run they were issued
 * for, and the gateway accepts a token only for the run its route was registered by: a stop and the next start
 * revoke every token issued before.
 */

/** Header the gateway adds to each forwarded request and upgrade; nothing else knows its value. */
export const ROUTE_SECRET_HEADER = 'x-gitspaces-route-secret';

/** Body of the gateway admin API's `PUT /routes/:gitspaceId`. */
export interface RouteRegistration {
  /** Origin of the gitspace agent, `http(s)://host:port`. */
  target: string;
  /** Random per start, at least 32 bytes of entropy, base64url. */
  secret: string;
  /** The start workflow run that registered the route; access tokens must name the same run. */
  runId: string;
}
