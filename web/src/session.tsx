/**
 * Who is signed in: GET /api/v1/session once at load, its CSRF token handed to the client, and back to the sign-in
 * page whenever the API says the session ended (a 401).
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ApiError, client } from './data/client';
import { auth } from './data/requests';
import type { Session } from './data/types';

export type SessionState =
  | { status: 'loading' }
  | { status: 'signed-out' }
  | { status: 'signed-in'; session: Session }
  | { status: 'unavailable'; error: unknown };

interface SessionContextValue {
  state: SessionState;
  /** Reads the session again (after signing in). */
  refresh: () => Promise<SessionState>;
  signOut: () => Promise<void>;
}

const SessionContext = createContext<SessionContextValue | undefined>(undefined);

async function readSession(): Promise<SessionState> {
  try {
    const session = await auth.session();
    client.setCsrfToken(session.csrfToken);
    return { status: 'signed-in', session };
  } catch (error) {
    client.setCsrfToken(undefined);
    if (error instanceof ApiError && error.status === 401) return { status: 'signed-out' };
    return { status: 'unavailable', error };
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ status: 'loading' });

  const refresh = useCallback(async () => {
    const next = await readSession();
    setState(next);
    return next;
  }, []);

  useEffect(() => {
    client.setUnauthenticatedHandler(() => {
      client.setCsrfToken(undefined);
      setState({ status: 'signed-out' });
    });
    void refresh();
    return () => client.setUnauthenticatedHandler(undefined);
  }, [refresh]);

  const signOut = useCallback(async () => {
    await auth.signOut();
    client.setCsrfToken(undefined);
    setState({ status: 'signed-out' });
  }, []);

  const value = useMemo(() => ({ state, refresh, signOut }), [state, refresh, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionContextValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useSession outside SessionProvider');
  return value;
}

/** The signed-in session; only for pages the app shows once signed in. */
export function useSignedIn(): Session {
  const { state } = useSession();
  if (state.status !== 'signed-in') throw new Error('useSignedIn on a page shown without a session');
  return state.session;
}
