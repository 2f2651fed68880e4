/** One hook per resource the pages read; the writes are in ./requests.ts. */
import { useCallback, useEffect, useState } from 'react';
import { parsePrometheusText, type Sample } from './prometheus';
import { auth, gitspaces, infrastructures, metricsText, users } from './requests';
import { useResource } from './use-resource';

export const useSignInOptions = () => useResource('auth-options', () => auth.options());

export const useGitspace = (gitspaceId: string) =>
  useResource(`gitspace:${gitspaceId}`, (signal) => gitspaces.get(gitspaceId, signal));

export const useInfrastructures = () => useResource('infrastructures', (signal) => infrastructures.list(signal));

export const useInfrastructure = (infrastructureId: string) =>
  useResource(`infrastructure:${infrastructureId}`, (signal) => infrastructures.get(infrastructureId, signal));

/** The machines of an infrastructure; nothing until one is chosen. */
export const useMachines = (infrastructureId: string | undefined) =>
  useResource(infrastructureId ? `machines:${infrastructureId}` : undefined, (signal) =>
    infrastructures.machines(infrastructureId ?? '', signal),
  );

export const useUsers = () => useResource('users', (signal) => users.list(signal));

export const useUserTokens = (userId: string) =>
  useResource(`tokens:${userId}`, (signal) => users.tokens(userId, signal));

/** GET /metrics read now and every `everyMs`, keeping the last `keep` readings (for a trend). */
export function useMetricsReadings(everyMs: number, keep = 60) {
  const [readings, setReadings] = useState<{ at: number; samples: Sample[] }[]>([]);
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const read = useCallback(() => {
    setLoading(true);
    metricsText()
      .then(
        (text) => {
          setReadings((current) => [
            ...current.slice(1 - keep),
            { at: Date.now(), samples: parsePrometheusText(text) },
          ]);
          setError(undefined);
        },
        (failure: unknown) => setError(failure),
      )
      .finally(() => setLoading(false));
  }, [keep]);
  useEffect(() => {
    read();
    const timer = window.setInterval(read, everyMs);
    return () => window.clearInterval(timer);
  }, [read, everyMs]);
  return { readings, latest: readings.at(-1)?.samples, error, loading, read };
}
