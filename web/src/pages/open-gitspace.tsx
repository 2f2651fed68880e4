import { useEffect, useRef, useState } from 'react';
import { ErrorBanner, Loading } from '../components/ui';
import { ApiError } from '../data/client';
import { gitspaces } from '../data/requests';
import { Link, Redirect } from '../router';
import { useSession } from '../session';

/**
 * `/open/:id`, where the gateway sends a browser that has no access to a gitspace: sign in if needed (coming back
 * here), then get an access grant and go to the gitspace.
 */
export function OpenGitspacePage({ gitspaceId }: { gitspaceId: string }) {
  const { state } = useSession();
  const [error, setError] = useState<unknown>();
  const asked = useRef(false);

  useEffect(() => {
    document.title = 'Opening a gitspace · Gitspaces';
    if (state.status !== 'signed-in' || asked.current) return;
    asked.current = true;
    gitspaces.access(gitspaceId).then(
      (grant) => window.location.assign(grant.url),
      (failure: unknown) => setError(failure),
    );
  }, [state.status, gitspaceId]);

  if (state.status === 'signed-out') {
    return <Redirect to={`/sign-in?return_to=${encodeURIComponent(`/open/${encodeURIComponent(gitspaceId)}`)}`} />;
  }
  const detail = `/gitspaces/${encodeURIComponent(gitspaceId)}`;
  return (
    <main className="centered">
      {!error && <Loading label="Opening your gitspace…" />}
      {error !== undefined && (
        <ErrorBanner
          error={error}
          title={
            error instanceof ApiError && error.status === 409 ? 'This gitspace is not running' : 'Could not open it'
          }
        >
          <p>
            <Link to={detail} className="button">
              Go to the gitspace
            </Link>{' '}
            <Link to="/" className="button button-quiet">
              All gitspaces
            </Link>
          </p>
        </ErrorBanner>
      )}
      {state.status === 'unavailable' && <ErrorBanner error={state.error} title="Gitspaces is not answering" />}
    </main>
  );
}
