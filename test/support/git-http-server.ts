import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createBareRepository } from './git-server';

/** One request the server got, and whether it carried the token. */
export interface GitHttpRequest {
  method: string;
  path: string;
  authorized: boolean;
}

export interface GitHttpServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `http://127.0.0.1:PORT/<name>`: where a repository of that name is (or will be) served. */
  urlOf(name: string): string;
  /** Creates a bare repository with one commit holding `files` (branch `main`). */
  createRepository(name: string, files: Record<string, string>): Promise<string>;
  /** Answers every request under `/<name>/` with a 302 to `location` plus the rest of the path. */
  redirect(name: string, location: string): void;
  /** Called before an authorised request is served; the request waits for it (to look around during a clone). */
  hold?: (request: GitHttpRequest) => Promise<void>;
  requests: GitHttpRequest[];
  stop(): Promise<void>;
}

/**
 * A real smart-HTTP git server on loopback: `git http-backend` behind node:http as CGI. With `token`, every request
 * needs HTTP Basic authentication whose password is the token (any user name), as a git host's access token does;
 * pushes are then allowed too. The Authorization header never reaches the backend's environment.
 */
export async function startGitHttpServer(options: { token?: string } = {}): Promise<GitHttpServer> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-git-http-'));
  const redirects = new Map<string, string>();
  const server = http.createServer((req, res) => {
    void serve(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  const state: GitHttpServer = {
    url: '',
    urlOf: (name) => `${state.url}/${name}`,
    createRepository: (name, files) => createBareRepository(base, name, files),
    redirect: (name, location) => redirects.set(name, location),
    requests: [],
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(base, { recursive: true, force: true });
    },
  };

  async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = new URL(req.url ?? '/', 'http://git.invalid');
    const user = basicUser(req.headers.authorization, options.token);
    const request = { method: req.method ?? 'GET', path: target.pathname, authorized: user !== undefined };
    state.requests.push(request);
    const [, first = '', ...rest] = target.pathname.split('/');
    const redirect = redirects.get(first);
    if (redirect !== undefined) {
      res.writeHead(302, { location: `${redirect}/${rest.join('/')}${target.search}` }).end();
      return;
    }
    if (options.token !== undefined && user === undefined) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('authentication required\n');
      return;
    }
    await state.hold?.(request);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: base,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(target.pathname),
      QUERY_STRING: target.search.slice(1),
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      ...(user !== undefined && options.token !== undefined ? { REMOTE_USER: user } : {}),
      ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
      ...(typeof req.headers['git-protocol'] === 'string' ? { GIT_PROTOCOL: req.headers['git-protocol'] } : {}),
    };
    const backend = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    req.pipe(backend.stdin);
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      let headDone = false;
      backend.stdout.on('data', (chunk: Buffer) => {
        if (headDone) {
          res.write(chunk);
          return;
        }
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        headDone = true;
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line.slice(colon + 1).trim();
          if (name === 'status') status = parseInt(value, 10);
          else headers[name] = value;
        }
        res.writeHead(status, headers);
        res.write(head.subarray(end + 4));
      });
      backend.on('error', reject);
      backend.on('close', () => {
        if (!headDone) res.writeHead(502);
        res.end();
        resolve();
      });
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** The user name of a Basic credential whose password is `token`; undefined when absent or wrong. */
function basicUser(header: string | undefined, token: string | undefined): string | undefined {
  if (token === undefined) return 'anonymous';
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 && decoded.slice(colon + 1) === token ? decoded.slice(0, colon) : undefined;
}
