import { randomBytes } from 'node:crypto';
import { ConflictError } from '../../common/errors';
import type { UserRow } from '../../db/schema';
import type { Store } from '../../db/store';
import type { UserWithStatus } from '../../db/stores/identities';
import { inactiveUserMessage } from '../../db/stores/users';
import { SignInRefusedError, type ProviderIdentity } from './oidc';
import type { OidcSettings } from './settings';

/**
 * The Gitspaces user a provider identity signs in as: the one bound to it; else the user an administrator invited
 * with its verified e-mail, bound now; else, with open sign-up, a new user. The admin group, when configured, decides
 * the role at every sign-in. A disabled or removed user, or an uninvited one, is refused (403).
 */
export async function userForIdentity(
  store: Store,
  settings: Pick<OidcSettings, 'signUp' | 'adminGroup'>,
  identity: ProviderIdentity,
): Promise<UserRow> {
  const { issuer, subject } = identity;
  let user = await store.findUserByIdentity(issuer, subject);
  if (!user && identity.verifiedEmail) {
    const invited = await store.findInvitedUser(issuer, identity.verifiedEmail);
    if (invited?.active) {
      await store.bindIdentity(issuer, subject, invited.id).catch(async (error: unknown) => {
        // The same person signing in twice at once bound it a moment ago; anyone else lost the invitation.
        if (!(error instanceof ConflictError) || (await store.findUserByIdentity(issuer, subject))?.id !== invited.id) {
          throw error instanceof ConflictError ? new SignInRefusedError(403, error.message) : error;
        }
      });
    }
    user = invited;
  }
  if (!user && settings.signUp === 'open') user = await createUser(store, identity);
  if (!user) {
    throw new SignInRefusedError(
      403,
      identity.verifiedEmail
        ? `no Gitspaces user was invited as ${identity.verifiedEmail}: ask an administrator to create one with this e-mail`
        : 'the identity provider gave no verified e-mail to find your invitation by: ask an administrator',
    );
  }
  if (!user.active) throw new SignInRefusedError(403, `your Gitspaces ${inactiveUserMessage(user)}`);
  if (settings.adminGroup) {
    const role = identity.groups.includes(settings.adminGroup) ? 'admin' : 'member';
    if (role !== user.role) {
      await store.setRoleFromProvider(user.id, role);
      user = { ...user, role };
    }
  }
  return user;
}

/** A user named after what the provider calls them (a number added when the name is taken). */
async function createUser(store: Store, identity: ProviderIdentity): Promise<UserWithStatus> {
  const base = userName(identity.preferredName ?? '');
  const candidates = [base, ...[2, 3, 4, 5].map((n) => `${base.slice(0, 60)}-${n}`)];
  candidates.push(`${base.slice(0, 54)}-${randomBytes(4).toString('hex')}`);
  for (const name of candidates) {
    try {
      return await store.createUserWithIdentity({
        name,
        email: identity.verifiedEmail ?? null,
        role: 'member',
        issuer: identity.issuer,
        subject: identity.subject,
      });
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      // The identity itself was bound a moment ago (the same person signing in twice at once): that user it is.
      const bound = await store.findUserByIdentity(identity.issuer, identity.subject);
      if (bound) return bound;
    }
  }
  throw new ConflictError(`no free user name like '${base}'`);
}

/** A user name (api/schemas.ts CreateUserBody: lowercase letters, digits, dots, dashes, underscores). */
function userName(preferred: string): string {
  const name = preferred
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63)
    .replace(/[._-]+$/, '');
  return name || 'user';
}
