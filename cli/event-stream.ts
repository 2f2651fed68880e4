/**
 * A gitspace's live event stream (`GET /gitspaces/:id/events`, `text/event-stream`), followed across dropped
 * connections: each reconnect sends `Last-Event-ID` with the last event seen, so no event is missed or shown twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { gitspacePath, type ApiClient } from './api-client';
import { ApiError, ApiUnreachableError } from './errors';
import type { GitspaceEvent } from './types';

/** Consecutive failed connections before giving up: about half a minute of the API being away. */
const MAX_FAILED_CONNECTIONS = 8;
const MAX_BACKOFF_MS = 5_000;

export interface FollowOptions {
  /** Only events after this one (its `seq`); 0 for the whole log. */
  after: number;
  /** Ends the following (Ctrl-C, a timeout). */
  signal: AbortSignal;
  /** Each new event, in order; returning true ends the following. */
  onEvent(event: GitspaceEvent): boolean | void;
  /** The stream dropped and is being opened again. */
  onReconnect?(reason: string): void;
}

/** Why following ended: the caller's onEvent said so, or its signal fired. */
export type FollowEnd = 'done' | 'aborted';

/** Follows the gitspace's events until onEvent returns true or the signal fires; throws when the API refuses. */
export async function followEvents(client: ApiClient, gitspaceId: string, options: FollowOptions): Promise<FollowEnd> {
  // An ES module, loaded with import() from this CommonJS package.
  const { createParser } = await import('eventsource-parser');
  const { signal } = options;
  let after = options.after;
  let failures = 0;
  while (!signal.aborted) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    signal.addEventListener('abort', abort, { once: true });
    let done = false;
    let failure: unknown;
    try {
      const response = await client.open(
        gitspacePath(gitspaceId, '/events'),
        { accept: 'text/event-stream', ...(after > 0 ? { 'last-event-id': String(after) } : {}) },
        connection.signal,
      );
      failures = 0;
      const parser = createParser({
        onEvent(message) {
          const seq = Number(message.id);
          if (done || !Number.isSafeInteger(seq) || seq <= after) return;
          after = seq;
          if (options.onEvent(JSON.parse(message.data) as GitspaceEvent) === true) done = true;
        },
      });
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      while (!done) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      if (done) connection.abort();
    } catch (error) {
      failure = error;
    } finally {
      signal.removeEventListener('abort', abort);
    }
    if (done) return 'done';
    if (signal.aborted) return 'aborted';
    // Refused for good (a revoked token, a gitspace that is not ours): no point in trying again.
    if (failure instanceof ApiError && !failure.transient) throw failure;
    failures += 1;
    if (failures > MAX_FAILED_CONNECTIONS) {
      throw failure instanceof ApiError || failure instanceof ApiUnreachableError
        ? failure
        : new ApiUnreachableError(client.url, `the event stream of gitspace ${gitspaceId} kept dropping`);
    }
    options.onReconnect?.(failure === undefined ? 'the API closed the event stream' : describe(failure));
    const backoff = Math.min(MAX_BACKOFF_MS, 250 * 2 ** failures);
    const asked = failure instanceof ApiError ? failure.retryAfterSeconds : undefined;
    await sleep(asked !== undefined ? asked * 1000 : backoff, undefined, { signal }).catch(() => undefined);
  }
  return 'aborted';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
