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

import path from 'node:path';
import { newToken } from './ids';
import { readOrCreateSecretFile } from './secret-file';

/** Header the gateway adds to each forwarded request and upgrade; nothing else knows its value. */
export const ROUTE_SECRET_HEADER = 'x-gitspaces-route-secret';

/** A route secret as the agent and the gateway take one: 32 random bytes or more, base64url (43 characters). */
export const ROUTE_SECRET_PATTERN = /^[A-Za-z0-9_-]{43,256}$/;

/** Where the gateway admin token is kept when GITSPACES_GATEWAY_ADMIN_TOKEN does not give it. */
export const GATEWAY_ADMIN_TOKEN_FILE = 'gateway-admin-token';

/**
 * The gateway admin token in a data dir, generated on first use by whichever of the gateway and a runner sharing the
 * data dir (the embedded stack) starts first; both then read the same value.
 */
export async function readOrCreateGatewayAdminToken(dataDir: string): Promise<{ value: string; file: string }> {
  const file = path.join(dataDir, GATEWAY_ADMIN_TOKEN_FILE);
  return { value: (await readOrCreateSecretFile(file, () => newToken('gwadm'))).value, file };
}

/** Body of the gateway admin API's `PUT /routes/:gitspaceId`. */
export interface RouteRegistration {
  /** Origin of the gitspace agent, `http(s)://host:port`. */
  target: string;
  /** Random per start, at least 32 bytes of entropy, base64url. */
  secret: string;
  /** The start workflow run that registered the route; access tokens must name the same run. */
  runId: string;
}

/** Percent-decoding rounds before a path is given up on (`%25` nested deeper than this is not a real path). */
const MAX_DECODE_ROUNDS = 4;

/**
 * A path as any server might read it: percent-decoded until nothing changes. Undefined when a decoding fails or nests
 * deeper than anything real: such a path is refused, never guessed at.
 */
export function decodePathFully(path: string): string | undefined {
  let decoded = path;
  for (let round = 0; decoded.includes('%'); round++) {
    if (round === MAX_DECODE_ROUNDS) return undefined;
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
    if (next === decoded) break;
    decoded = next;
  }
  return decoded;
}

/** First path segment of the agent's private API (for the runner), compared case-insensitively after decoding. */
const AGENT_PRIVATE_SEGMENT = '_agent';

/**
 * SSH to a gitspace goes over a WebSocket the gateway admits on this reserved path under the gitspace's prefix, with an
 * access token of scope `ssh` as a bearer (never a cookie or `?token=`). The agent serves SSH only there: nothing on
 * the machine listens for SSH.
 */
export const SSH_TUNNEL_PATH = '/_gitspaces/ssh';

/** Where `gitspaces ssh --stdio` renews an open tunnel's token; the gateway answers it itself, never forwarding it. */
export const SSH_RENEW_PATH = '/_gitspaces/ssh/renew';

/**
 * Header the gateway adds to an SSH upgrade: the `SHA256:` fingerprints (comma-separated) of the keys the verified
 * token names, after removing any such header a client sent. The agent admits a key only when it is listed here.
 */
export const SSH_KEYS_HEADER = 'x-gitspaces-ssh-keys';

/** Header of the gateway's 101 answer to an SSH upgrade: the tunnel's id, for renewing it. */
export const TUNNEL_ID_HEADER = 'x-gitspaces-tunnel-id';

/** First path segment reserved for the gateway's own paths under a gitspace (SSH today); never an IDE path. */
const GATEWAY_RESERVED_SEGMENT = '_gitspaces';

/**
 * What a decoded path (see {@link decodePathFully}) under a gitspace's prefix is, however it is spelt: the agent's
 * private API (`/_agent/`, `/_Agent/`, `//_agent`, from `/%5Fagent/`, `/%255fagent/`...), which the gateway never
 * forwards and the agent wants its own secret for, whoever sends it; the gateway's SSH paths (`/_GITSPACES/SSH`,
 * `//_gitspaces/ssh/`); another reserved path; or the IDE's. The gateway and the agent both classify with this, so no
 * spelling is one thing on one side and another on the other.
 */
export function gatewayPathKind(decoded: string): 'agent-private' | 'ssh' | 'ssh-renew' | 'reserved' | 'ide' {
  let start = 0;
  while (decoded.charCodeAt(start) === 47 /* / */) start++;
  // Every reserved first segment starts with `_`: the IDE's paths (nearly every request) are known without more work.
  if (decoded.charCodeAt(start) !== 95 /* _ */) return 'ide';
  if (decoded.slice(start, start + AGENT_PRIVATE_SEGMENT.length).toLowerCase() === AGENT_PRIVATE_SEGMENT) {
    return 'agent-private';
  }
  const segments = decoded
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => segment.toLowerCase());
  if (segments[0] !== GATEWAY_RESERVED_SEGMENT) return 'ide';
  if (segments[1] === 'ssh' && segments.length === 2) return 'ssh';
  if (segments[1] === 'ssh' && segments[2] === 'renew' && segments.length === 3) return 'ssh-renew';
  return 'reserved';
}
