import { useEffect, useState, type FormEvent } from 'react';
import { ErrorBanner, Field, Loading } from '../components/ui';
import { fieldErrors } from '../data/client';
import { useSignInOptions } from '../data/hooks';
import { auth } from '../data/requests';
import { navigate, Redirect, safeReturnPath, useLocation } from '../router';
import { useSession } from '../session';

/** Sign in through the identity provider, or with an API token; then back to where the user was going. */
export function SignInPage() {
  const { search } = useLocation();
  const returnTo = safeReturnPath(search.get('return_to'));
  const { state, refresh } = useSession();
  const options = useSignInOptions();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  useEffect(() => {
    document.title = 'Sign in · Gitspaces';
  }, []);

  if (state.status === 'signed-in') return <Redirect to={returnTo} />;

  const signInWithToken = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await auth.signInWithToken(token.trim());
      const next = await refresh();
      if (next.status === 'signed-in') navigate(returnTo, { replace: true });
      else setError(next.status === 'unavailable' ? next.error : new Error('The session did not start; try again.'));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const opening = returnTo.startsWith('/open/');
  const offered = options.data;
  return (
    <main className="sign-in">
      <div className="sign-in-card">
        <div className="sign-in-brand" aria-hidden="true">
          <svg viewBox="0 0 32 32" width="40" height="40">
            <rect width="32" height="32" rx="7" className="brand-mark" />
            <path d="M9 11l6 5-6 5M17 22h7" className="brand-glyph" />
          </svg>
        </div>
        <h1>Sign in to Gitspaces</h1>
        <p className="muted">
          {opening
            ? 'Sign in to open your gitspace. You will go straight on to it.'
            : 'Cloud development environments in your own infrastructure.'}
        </p>
        {options.loading && <Loading label="Finding how to sign in…" />}
        <ErrorBanner error={options.error} title="Could not load the sign-in options">
          <button type="button" className="button" onClick={options.reload}>
            Try again
          </button>
        </ErrorBanner>
        {offered?.oidc && (
          <a className="button button-primary button-block button-large" href={auth.oidcLoginUrl(returnTo)}>
            Sign in with {offered.providerName ?? 'your identity provider'}
          </a>
        )}
        {offered?.oidc && offered.token && (
          <p className="divider">
            <span>or</span>
          </p>
        )}
        {offered?.token && (
          <form onSubmit={(event) => void signInWithToken(event)} noValidate>
            <Field
              label="API token"
              hint={
                offered.oidc
                  ? 'For scripts and service accounts: a token your administrator gave you.'
                  : 'A token your administrator gave you. With npm start, the admin token is in .gitspaces/admin-token.'
              }
              errors={fieldErrors(error, 'token')}
            >
              {(props) => (
                <input
                  {...props}
                  type="password"
                  autoComplete="current-password"
                  spellCheck={false}
                  required
                  value={token}
                  onChange={(event) => setToken(event.target.value)}
                />
              )}
            </Field>
            <ErrorBanner error={error} />
            <button
              type="submit"
              className={offered.oidc ? 'button button-block' : 'button button-primary button-block'}
              disabled={busy || token.trim() === ''}
            >
              {busy ? 'Signing in…' : 'Sign in with an API token'}
            </button>
          </form>
        )}
        {offered && !offered.oidc && !offered.token && (
          <p className="banner">This installation offers no way to sign in from the browser; ask its administrator.</p>
        )}
      </div>
    </main>
  );
}
