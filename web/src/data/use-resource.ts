import { useCallback, useEffect, useState } from 'react';

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Loads again (after a change the page made), keeping the current data on screen meanwhile. */
  reload: () => void;
  /** Replaces the data in place (an update the page already has, such as a stream's). */
  setData: (update: (current: T | undefined) => T | undefined) => void;
}

/**
 * Loads `load` when `key` changes (and on reload), aborting a load that is no longer wanted. `key` names what is
 * loaded (`infrastructure:local`); undefined loads nothing.
 */
export function useResource<T>(key: string | undefined, load: (signal: AbortSignal) => Promise<T>): Resource<T> {
  const [state, setState] = useState<{ key?: string; data?: T; error?: unknown; loading: boolean }>({
    loading: key !== undefined,
  });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    if (key === undefined) return;
    const abort = new AbortController();
    setState((current) => ({ ...(current.key === key ? current : { key }), loading: true }));
    load(abort.signal).then(
      (data) => {
        if (!abort.signal.aborted) setState({ key, data, loading: false });
      },
      (error: unknown) => {
        if (!abort.signal.aborted) setState((current) => ({ ...current, error, loading: false }));
      },
    );
    return () => abort.abort();
    // `load` is a new function on every render; `key` says when it loads something else.
  }, [key, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  const setData = useCallback(
    (update: (current: T | undefined) => T | undefined) =>
      setState((current) => ({ ...current, data: update(current.data) })),
    [],
  );
  const current = state.key === key;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: key !== undefined && (!current || state.loading),
    reload,
    setData,
  };
}
