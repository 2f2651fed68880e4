/**
 * Live streams (server-sent events): a gitspace's events, as a JSON list or a stream that resumes from Last-Event-ID;
 * and the change stream of every gitspace the caller may see.
 */
import type { Request, Response } from 'express';
import { InputError, TooManyRequestsError } from '../../common/errors';
import type { EventRow } from '../../db/schema';
import { parseChangeCursor, type ChangeCursor, type PresentedGitspace } from '../event-feed';
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
      if (wantsEventStream(req)) {
        const lastEventId = Number(req.headers['last-event-id'] ?? 0);
        const after = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : 0;
        await serveEventStream(req, res, services, (send) =>
          services.eventFeed.subscribe(gitspace.id, after, (events: EventRow[]) => {
            for (const event of events) {
              send(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(presentEvent(event))}\n\n`);
            }
          }),
        );
        return undefined;
      }
      return { items: (await services.store.listEvents(gitspace.id)).map(presentEvent) };
    },
  }),
];

/**
 * GET /gitspaces/changes, in the gitspace routes before /gitspaces/:id (which would take `changes` for an id): the
 * caller's gitspaces as they change (api/event-feed.ts says how nothing is missed).
 */
export const gitspaceChangesRoute = defineRoute({
  method: 'get',
  path: '/gitspaces/changes',
  summary:
    'Your gitspaces as they change, an administrator all (text/event-stream only): event `gitspace` with the gitspace as GET /gitspaces/{id} shows it, on its creation, each state change, step and error, and its deletion; `id` resumes through Last-Event-ID',
  access: 'user',
  status: 200,
  handle: async ({ req, res, services }) => {
    if (!wantsEventStream(req)) {
      throw new InputError('this is an event stream: ask for it with Accept: text/event-stream', [
        { path: 'header.Accept', message: 'must accept text/event-stream' },
      ]);
    }
    const cursor = changeCursorOf(req);
    const user = userOf(req);
    await serveEventStream(req, res, services, (send) =>
      services.eventFeed.subscribeChanges(
        { userId: user.id, admin: user.role === 'admin' },
        cursor,
        (gitspaces: PresentedGitspace[], next: string) => {
          // The cursor goes with the last message only: a client cut off before it resumes from the one before, and
          // gets all of this batch again rather than none of what it missed.
          const messages = gitspaces.map((gitspace) => `event: gitspace\ndata: ${JSON.stringify(gitspace)}\n`);
          send(
            messages
              .slice(0, -1)
              .map((message) => `${message}\n`)
              .join('') + `id: ${next}\n${messages.at(-1) ?? ''}\n`,
          );
        },
      ),
    );
    return undefined;
  },
});

/** Whether the client asked for an event stream rather than JSON (an EventSource sends `Accept: text/event-stream`). */
function wantsEventStream(req: Request): boolean {
  return req.accepts(['application/json', 'text/event-stream']) === 'text/event-stream';
}

function changeCursorOf(req: Request): ChangeCursor | undefined {
  const given = req.headers['last-event-id'];
  if (given === undefined || given === '') return undefined;
  const cursor = parseChangeCursor(String(given));
  if (!cursor) {
    throw new InputError('Last-Event-ID is not an id this change stream gave out; open the stream without it', [
      { path: 'header.Last-Event-ID', message: 'is not an id this change stream gave out' },
    ]);
  }
  return cursor;
}

/**
 * Serves an event stream: counted against the caller's open streams (429 past the cap), subscribed first (so a
 * subscription that fails is an error answer, and what a stream reports starts before its client sees it open), then
 * the headers with a `: connected` comment at once, whatever the subscription already gave, and from then on what it
 * gives, with a comment whenever the feed's heartbeat comes round so proxies keep the stream open. Until the client
 * goes.
 */
async function serveEventStream(
  req: Request,
  res: Response,
  services: RouteServices,
  subscribe: (send: (chunk: string) => void) => Promise<() => void>,
) {
  const { limits, openEventStreams, eventFeed } = services;
  const user = userOf(req);
  const open = openEventStreams.get(user.id) ?? 0;
  if (open >= limits.maxEventStreamsPerUser) {
    throw new TooManyRequestsError(
      `user '${user.name}' has ${open} of ${limits.maxEventStreamsPerUser} event streams open; close one first`,
      STREAM_RETRY_AFTER_SECONDS,
    );
  }
  openEventStreams.set(user.id, open + 1);
  const stream: { closed: boolean; unsubscribe?: () => void; stalled?: NodeJS.Timeout; heartbeat?: NodeJS.Timeout } = {
    closed: false,
  };
  res.on('close', () => {
    stream.closed = true;
    clearTimeout(stream.stalled);
    clearInterval(stream.heartbeat);
    stream.unsubscribe?.();
    const left = (openEventStreams.get(user.id) ?? 1) - 1;
    if (left > 0) openEventStreams.set(user.id, left);
    else openEventStreams.delete(user.id);
  });
  /** What the subscription gives before the headers are out. */
  let early: string[] | undefined = [];
  const send = (chunk: string) => {
    if (stream.closed) return;
    if (early) return void early.push(chunk);
    res.write(chunk);
    // A client that does not read must not make this process hold its events without end.
    if (res.writableLength > STREAM_MAX_BUFFERED_BYTES && !stream.stalled) {
      stream.stalled = setTimeout(() => res.destroy(), STREAM_STALL_MS);
      res.once('drain', () => {
        clearTimeout(stream.stalled);
        stream.stalled = undefined;
      });
    }
  };
  const unsubscribe = await subscribe(send);
  if (stream.closed) return unsubscribe();
  stream.unsubscribe = unsubscribe;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // A reverse proxy that buffers answers (nginx) would hold the stream back.
    'x-accel-buffering': 'no',
  });
  const given = early.join('');
  early = undefined;
  send(`: connected\n\n${given}`);
  stream.heartbeat = setInterval(() => send(': heartbeat\n\n'), eventFeed.heartbeatMs);
  stream.heartbeat.unref();
}
