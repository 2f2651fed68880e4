/**
 * Live data from the API's server-sent events: a gitspace's event log, and the list of gitspaces kept current by the
 * change stream (one stream for the whole list: no polling per row).
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { GITSPACE_STATES, type GitspaceState } from '../../../contracts/lifecycle';
import { gitspaces } from './requests';
import type { Gitspace, GitspaceEvent } from './types';

export type StreamStatus = 'connecting' | 'live' | 'reconnecting';

/** The SSE event names a gitspace's log carries (the event's `type`). */
export const GITSPACE_EVENT_TYPES = ['created', 'state', 'step', 'reconcile', 'message'] as const;

const RETRY_DELAYS_MS = [2_000, 5_000, 10_000, 30_000];

/**
 * Listens to the server-sent events at `url` (none when undefined). EventSource reconnects by itself after a dropped
 * connection (sending Last-Event-ID); when the API refuses the stream (a 429 while too many are open, a restart), it
 * gives up, so this opens a new one after a growing delay. `onOpen` runs on every (re)connection.
 */
export function useEventSource(
  url: string | undefined,
  listeners: Record<string, (event: MessageEvent<string>) => void>,
  onOpen?: (reconnected: boolean) => void,
): StreamStatus {
  const [status, setStatus] = useState<StreamStatus>('connecting');
  const latest = useRef({ listeners, onOpen });
  latest.current = { listeners, onOpen };
  const names = Object.keys(listeners).sort().join(',');

  useEffect(() => {
    if (url === undefined) return;
    let source: EventSource | undefined;
    let retry: number | undefined;
    let failures = 0;
    let opened = false;
    const connect = () => {
      source = new EventSource(url);
      for (const name of names.split(',')) {
        source.addEventListener(name, (event) => latest.current.listeners[name]?.(event));
      }
      source.onopen = () => {
        failures = 0;
        setStatus('live');
        latest.current.onOpen?.(opened);
        opened = true;
      };
      source.onerror = () => {
        setStatus('reconnecting');
        if (source?.readyState !== EventSource.CLOSED) return;
        const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)];
        failures += 1;
        retry = window.setTimeout(connect, delay);
      };
    };
    setStatus('connecting');
    connect();
    return () => {
      window.clearTimeout(retry);
      source?.close();
    };
  }, [url, names]);

  return status;
}

function parse<T>(event: MessageEvent<string>): T | undefined {
  try {
    return JSON.parse(event.data) as T;
  } catch {
    return undefined;
  }
}

/**
 * A gitspace's events, oldest first, from its backlog on and live; `onEvent` sees each new one. For one gitspace per
 * mount (the page is keyed by the gitspace id).
 */
export function useGitspaceEvents(gitspaceId: string, onEvent?: (event: GitspaceEvent) => void) {
  const [events, setEvents] = useState<GitspaceEvent[]>([]);
  const seen = useRef(new Set<number>());
  const handle = useRef(onEvent);
  handle.current = onEvent;

  const receive = useCallback((message: MessageEvent<string>) => {
    const event = parse<GitspaceEvent>(message);
    if (!event || seen.current.has(event.seq)) return;
    seen.current.add(event.seq);
    // Events come in order; a sort only for one that does not (a resumed stream's overlap).
    setEvents((current) =>
      (current.at(-1)?.seq ?? 0) < event.seq ? [...current, event] : [...current, event].sort((a, b) => a.seq - b.seq),
    );
    handle.current?.(event);
  }, []);
  const status = useEventSource(
    gitspaces.eventStreamUrl(gitspaceId),
    Object.fromEntries(GITSPACE_EVENT_TYPES.map((type) => [type, receive])),
  );
  return { events, status };
}

/** The states a list filter shows: deleted gitspaces only when asked for. */
export const ACTIVE_STATES = GITSPACE_STATES.filter((state) => state !== 'deleted');

/**
 * The caller's gitspaces in `states`, a page at a time, kept current by the change stream: a changed gitspace is
 * updated in place, leaves the list when it leaves the filter, and a new one that fits appears at the top.
 */
export function useGitspaceList(states: readonly GitspaceState[], pageSize = 20) {
  const [items, setItems] = useState<Gitspace[]>([]);
  const [nextCursor, setNextCursor] = useState<string>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>();
  const filter = states.join(',');
  const load = useRef<AbortController | undefined>(undefined);

  const fetchPage = useCallback(
    (cursor?: string) => {
      load.current?.abort();
      const abort = new AbortController();
      load.current = abort;
      setLoading(true);
      gitspaces.list({ states: filter.split(','), limit: pageSize, cursor }, abort.signal).then(
        (page) => {
          if (abort.signal.aborted) return;
          setItems((current) => (cursor ? [...current, ...page.items] : page.items));
          setNextCursor(page.nextCursor);
          setError(undefined);
          setLoading(false);
        },
        (failure: unknown) => {
          if (abort.signal.aborted) return;
          setError(failure);
          setLoading(false);
        },
      );
    },
    [filter, pageSize],
  );

  useEffect(() => {
    setItems([]);
    fetchPage();
    return () => load.current?.abort();
  }, [fetchPage]);

  const status = useEventSource(
    gitspaces.changesStreamUrl,
    {
      gitspace: (message) => {
        const changed = parse<Gitspace>(message);
        if (!changed) return;
        const fits = filter.split(',').includes(changed.state);
        setItems((current) => {
          const at = current.findIndex((gitspace) => gitspace.id === changed.id);
          if (at === -1) return fits ? [changed, ...current] : current;
          return fits ? current.with(at, changed) : current.toSpliced(at, 1);
        });
      },
    },
    // Changes made while the stream was down are not replayed: read the first page again.
    (reconnected) => {
      if (reconnected) fetchPage();
    },
  );

  return { items, nextCursor, loading, error, status, loadMore: () => nextCursor && fetchPage(nextCursor) };
}
