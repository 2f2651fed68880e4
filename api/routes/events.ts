/** A gitspace's events: a JSON list, or a live server-sent-event stream that resumes from Last-Event-ID. */
import type { Request, Response } from 'express';
import { TooManyRequestsError } from '../../common/errors';
import type { EventRow } from '../../db/schema';
import { defineRoute, type RouteServices } from '../route-table';
import { Event, list } from '../schemas';
import { userOf } from './caller';
import { presentEvent } from './presenters';

/** When a client refused for holding too many event streams may try again, in seconds. */
const STREAM_RETRY_AFTER_SECONDS = 5;
/**
 * An event stream with more than this waiting to be sent, and none of it taken for STREAM_STALL_MS, has a client that
 * does not read: it is closed (it can resume with Last-Event-ID). A client that reads a long backlog is not.
 */
const STREAM_MAX_BUFFERED_BYTES = 1 << 20;
const STREAM_STALL_MS = 2_000;

export const eventRoutes = [
  defineRoute({
    method: 'get',
    path: '/gitspaces/:id/events',
    summary: "A gitspace's events (text/event-stream for a live stream)",
    access: 'user',
    gitspace: true,
    status: 200,
    response: list(Event),
    handle: async ({ req, res, gitspace, services }) => {
      if (req.accepts(['application/json', 'text/event-stream']) === 'text/event-stream') {
        await streamEvents(req, res, services, gitspace.id);
        return undefined;
      }
      return { items: (await services.store.listEvents(gitspace.id)).map(presentEvent) };
    },
  }),
];

/** Streams the gitspace's events after Last-Event-ID, then each new one, until the client goes. */
async function streamEvents(req: Request, res: Response, services: RouteServices, gitspaceId: string) {
  const { limits, openEventStreams } = services;
  const user = userOf(req);
  const open = openEventStreams.get(user.id) ?? 0;
  if (open >= limits.maxEventStreamsPerUser) {
    throw new TooManyRequestsError(
      `user '${user.name}' has ${open} of ${limits.maxEventStreamsPerUser} event streams open; close one first`,
      STREAM_RETRY_AFTER_SECONDS,
    );
  }
  openEventStreams.set(user.id, open + 1);
  let unsubscribe: (() => void) | undefined;
  let closed = false;
  let stalled: NodeJS.Timeout | undefined;
  res.on('close', () => {
    closed = true;
    clearTimeout(stalled);
    unsubscribe?.();
    const left = (openEventStreams.get(user.id) ?? 1) - 1;
    if (left > 0) openEventStreams.set(user.id, left);
    else openEventStreams.delete(user.id);
  });
  const lastEventId = Number(req.headers['last-event-id'] ?? 0);
  const after = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : 0;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (events: EventRow[]) => {
    if (closed) return;
    for (const event of events) {
      res.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(presentEvent(event))}\n\n`);
    }
    // A client that does not read must not make this process hold its events without end.
    if (res.writableLength > STREAM_MAX_BUFFERED_BYTES && !stalled) {
      stalled = setTimeout(() => res.destroy(), STREAM_STALL_MS);
      res.once('drain', () => {
        clearTimeout(stalled);
        stalled = undefined;
      });
    }
  };
  const stop = await services.eventFeed.subscribe(gitspaceId, after, send);
  if (closed) stop();
  else unsubscribe = stop;
}
