/** The dashboard's session: who is signed in, and what the page needs to act for them. */
import { AuthenticationError } from '../../common/errors';
import { defineRoute } from '../route-table';
import { Session } from '../schemas';
import { userOf } from './caller';
import { presentUser } from './presenters';

export const sessionRoutes = [
  defineRoute({
    method: 'get',
    path: '/session',
    summary: 'The session of the signed-in browser: its user, the CSRF token to send back, and how to sign in',
    access: 'user',
    status: 200,
    response: Session,
    handle: async ({ req, services }) => {
      const { sessions, settings, options } = services.signIn;
      const session = sessions.sessionOf(req);
      if (!session) {
        throw new AuthenticationError(
          'no dashboard session: this request came with an API token (sign in at /auth/login or POST /auth/token)',
        );
      }
      return {
        user: presentUser(userOf(req)),
        csrfToken: session.csrfToken,
        signIn: options(),
        ...(settings.temporalUiUrl ? { temporalUiUrl: settings.temporalUiUrl } : {}),
        ...(settings.temporalNamespace ? { temporalNamespace: settings.temporalNamespace } : {}),
      };
    },
  }),
];
