/**
 * What a simulated machine's agent answers: the real agent's private API and doors (agent/server.ts) without its
 * work. The health check is open; `/_agent/*` wants the agent secret of the machine's current boot; everything else
 * (the IDE) wants the route secret the runner set. The workspace is "cloned" at once, and present after that.
 */
import type http from 'node:http';
import { bearerMatches } from '../../common/bearer';
import { ROUTE_SECRET_HEADER, ROUTE_SECRET_PATTERN } from '../../common/gateway-route';
import { sameSecret } from '../../common/same-secret';
import { repositoryNetworksSchema } from '../../agent/repository-address';
import type { IdeKind, MachineStatus } from '../../contracts/provider';

/** What the agent of a simulated machine knows: the provider keeps it, the agent answers from it. */
export interface SimulatedMachine {
  gitspaceId: string;
  status: Extract<MachineStatus, 'provisioning' | 'running' | 'stopped'>;
  /** The agent secret of the current boot (a new one on every start). */
  agentSecret: string;
  ide: IdeKind;
  /** The machine's SSH host key line; made once, like the key a real agent keeps in the gitspace's home. */
  sshHostKey: string;
  /** Whether the repository was "cloned" on its disk (kept across stop and start). */
  workspace: 'empty' | 'ready';
  /** Set by the runner on every start (PUT /_agent/route); forgotten when the machine stops. */
  routeSecret?: string;
}

/** Answers one request to the agent of `machine`. */
export function answerAsAgent(machine: SimulatedMachine, req: http.IncomingMessage, res: http.ServerResponse): void {
  answer(machine, req, res).catch((error: unknown) => {
    if (res.headersSent) return;
    if (error instanceof BodyTooLargeError) send(res, 413, { error: { code: 'too_large', message: error.message } });
    else send(res, 500, { error: { code: 'internal', message: String(error) } });
  });
}

async function answer(machine: SimulatedMachine, req: http.IncomingMessage, res: http.ServerResponse) {
  const path = (req.url ?? '/').split('?', 1)[0]!;
  const method = req.method ?? 'GET';
  if (path === '/_agent/healthz' && (method === 'GET' || method === 'HEAD')) {
    return send(res, 200, {
      status: 'ok',
      gitspaceId: machine.gitspaceId,
      workspace: machine.workspace,
      ide: machine.ide,
    });
  }
  if (!path.startsWith('/_agent/')) {
    const routeSecret = req.headers[ROUTE_SECRET_HEADER];
    if (machine.routeSecret && typeof routeSecret === 'string' && sameSecret(routeSecret, machine.routeSecret)) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`simulated ${machine.ide} of ${machine.gitspaceId}\n`);
      return;
    }
    return unauthorized(res, 'this gitspace is reached only through its gateway');
  }
  if (!bearerMatches(req.headers.authorization, machine.agentSecret)) {
    return unauthorized(res, 'the agent secret is missing or wrong');
  }
  if (path === '/_agent/session' && method === 'GET') {
    return send(res, 200, { gitspaceId: machine.gitspaceId, routeSecretSet: machine.routeSecret !== undefined });
  }
  if (path === '/_agent/route' && method === 'PUT') {
    const secret = ((await readJson(req, 4 * 1024)) as { secret?: unknown } | undefined)?.secret;
    if (typeof secret !== 'string' || !ROUTE_SECRET_PATTERN.test(secret)) {
      return send(res, 400, {
        error: { code: 'invalid_request', message: 'secret must be 43+ base64url characters' },
      });
    }
    machine.routeSecret = secret;
    return send(res, 200, { sshHostKey: machine.sshHostKey });
  }
  if (path === '/_agent/workspace' && method === 'POST') {
    const body = (await readJson(req, 64 * 1024)) as
      { repository?: { url?: unknown }; repositoryNetworks?: unknown } | undefined;
    if (typeof body?.repository?.url !== 'string') {
      return send(res, 400, { error: { code: 'invalid_request', message: 'repository.url is required' } });
    }
    if (!repositoryNetworksSchema.safeParse(body.repositoryNetworks ?? {}).success) {
      return send(res, 400, {
        error: {
          code: 'invalid_request',
          message: 'repositoryNetworks takes allowLoopback and allowPrivate (booleans)',
        },
      });
    }
    const clone = machine.workspace === 'empty' ? 'cloned' : 'present';
    machine.workspace = 'ready';
    return send(res, 200, { clone, ranCommands: [] });
  }
  send(res, 404, { error: { code: 'not_found', message: `${method} ${path} is not part of the agent's API` } });
}

function unauthorized(res: http.ServerResponse, message: string): void {
  res.setHeader('cache-control', 'no-store');
  send(res, 401, { error: { code: 'unauthorized', message } });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Thrown when a request body is larger than its route takes (413, as express.json answers in the real agent). */
class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the request body is over ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The request's JSON body, or undefined when it is not JSON; a body over `limit` bytes is refused. */
async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
