import { AuthenticationError, TooManyRequestsError } from '../common/errors';
import { TokenBuckets, clientAddressKey } from '../common/rate-limit';
import type { UserRow } from '../db/schema';
import { inactiveUserMessage } from '../db/stores/users';

/** The API's limits (DESIGN.md §8), each from its own setting; see the README's configuration table. */
export interface ApiLimits {
  /** Requests per minute per API token (GITSPACES_API_RATE_LIMIT_PER_MINUTE); a burst of as many is allowed. */
  requestsPerMinute: number;
  /**
   * Failed authentications per minute per client address (GITSPACES_API_AUTH_FAILURES_PER_MINUTE); a burst of as
   * many is allowed, then every bearer check from that address is 429 until the allowance refills.
   */
  authFailuresPerMinute: number;
  /** Gitspaces a user may have that are not deleted (GITSPACES_MAX_GITSPACES_PER_USER); the admin too. */
  maxGitspacesPerUser: number;
  /** Event streams (`text/event-stream`) a user may hold open at once (GITSPACES_MAX_EVENT_STREAMS_PER_USER). */
  maxEventStreamsPerUser: number;
  /** SSH public keys a user may register (GITSPACES_MAX_SSH_KEYS_PER_USER). */
  maxSshKeysPerUser: number;
}

/** The user of an API token, and which of their tokens it was (a session made from it ends with it). */
export type TokenUser = UserRow & { tokenId: string };

export const DEFAULT_API_LIMITS: ApiLimits = {
  requestsPerMinute: 600,
  authFailuresPerMinute: 20,
  maxGitspacesPerUser: 20,
  maxEventStreamsPerUser: 10,
  maxSshKeysPerUser: 20,
};

/**
 * Bearer checks with a slow-down on failure and a request rate per token. Each distinct token an address asks about
 * spends one of that address's failure allowance before it is looked up (so a burst of guesses sent at once is held
 * back as well as a slow stream of them) and gets it back when the token is valid; requests carrying a token whose
 * lookup is under way share that lookup, and each of them that turns out invalid spends one too. Once an address has
 * no allowance left, every bearer check from it is 429 with Retry-After — a valid token's too, or the answer would
 * tell a guessed token from a wrong one. A valid token then spends one of its own per-minute requests.
 */
export function createAuthenticator(options: {
  limits: Pick<ApiLimits, 'requestsPerMinute' | 'authFailuresPerMinute'>;
  /** The token's user; `active: false` (db/stores/users.ts activeUser) when that user is disabled or removed. */
  findUserByToken(token: string): Promise<(TokenUser & { active?: boolean }) | undefined>;
  hashToken(token: string): string;
  now?: () => number;
}) {
  const now = options.now ?? Date.now;
  const failures = new TokenBuckets({ max: options.limits.authFailuresPerMinute, windowMs: 60_000, now });
  const requests = new TokenBuckets({ max: options.limits.requestsPerMinute, windowMs: 60_000, now });
  const lookups = new Map<string, Promise<(TokenUser & { active?: boolean }) | undefined>>();

  const slowDown = (address: string, wait: number) =>
    new TooManyRequestsError(`too many failed authentications from ${address}; try again in ${wait} s`, wait);

  const spendRequest = (key: string, what: string) => {
    const wait = requests.take(key);
    if (wait > 0) {
      throw new TooManyRequestsError(
        `${what} sent more than ${options.limits.requestsPerMinute} requests a minute; try again in ${wait} s`,
        wait,
      );
    }
  };

  async function checkToken(token: string, address: string): Promise<TokenUser> {
    const key = options.hashToken(token);
    let lookup = lookups.get(key);
    let joined = true;
    if (!lookup) {
      const wait = failures.take(address);
      if (wait > 0) throw slowDown(address, wait);
      joined = false;
      lookup = options.findUserByToken(token).finally(() => lookups.delete(key));
      lookups.set(key, lookup);
    }
    const user = await lookup;
    if (!user) {
      if (joined) {
        const wait = failures.take(address);
        if (wait > 0) throw slowDown(address, wait);
      }
      throw new AuthenticationError('the API token is not valid');
    }
    if (!joined) failures.refund(address);
    // A real token of a disabled or removed user: not a guess, so no slow-down, but refused until enabled again.
    if (user.active === false) throw new AuthenticationError(inactiveUserMessage(user));
    spendRequest(key, 'this API token');
    return user;
  }

  return {
    /** The user the `Authorization` header names, or an AuthenticationError (401) or TooManyRequestsError (429). */
    async authenticate(authorization: string | undefined, remoteAddress: string | undefined): Promise<UserRow> {
      const address = clientAddressKey(remoteAddress);
      const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(authorization ?? '');
      if (!match?.[1]) {
        const wait = failures.take(address);
        if (wait > 0) throw slowDown(address, wait);
        throw new AuthenticationError('send your API token as "Authorization: Bearer <token>"');
      }
      return checkToken(match[1], address);
    },

    /** The user of an API token sent another way (POST /auth/token's body), with the same slow-down as the header. */
    checkToken: (token: string, remoteAddress: string | undefined): Promise<TokenUser> =>
      checkToken(token, clientAddressKey(remoteAddress)),

    /**
     * A guess at a one-time secret other than an API token (a `gitspaces login --web` code): it spends one of the
     * address's failure allowance first (429 when none is left), and the returned `refund` gives it back when right.
     */
    takeGuess(remoteAddress: string | undefined): { refund(): void } {
      const address = clientAddressKey(remoteAddress);
      const wait = failures.take(address);
      if (wait > 0) throw slowDown(address, wait);
      return { refund: () => failures.refund(address) };
    },

    /** A dashboard session's request spends one of its own per minute, like a token's (`key` names the session). */
    spendRequest: (key: string): void => spendRequest(key, 'this session'),
  };
}

export type Authenticator = ReturnType<typeof createAuthenticator>;
