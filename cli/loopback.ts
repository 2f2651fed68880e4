/**
 * The listener `gitspaces login --web` waits on for the browser to come back (RFC 8252 §7.3, a loopback redirect): on
 * 127.0.0.1 at a port the system picks, it accepts only `GET /callback` carrying the state this command line made, and
 * answers a static page. Anything else, a forged callback with another state included, is refused and waited past; so
 * is a request naming another host (a page that rebound its DNS name to 127.0.0.1), whatever it carries.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sameSecret } from '../common/same-secret';

/** What the browser brought back: the one-time code, or the user's refusal (`access_denied`). */
export type CallbackAnswer = { code: string } | { error: string };

export interface LoopbackListener {
  /** `http://127.0.0.1:<port>/callback`, the redirect_uri the API sends the code to. */
  readonly redirectUri: string;
  /** The first callback with the right state. */
  readonly answer: Promise<CallbackAnswer>;
  close(): Promise<void>;
}

const CODE = /^[A-Za-z0-9_-]{1,256}$/;
const ERROR = /^[a-z_]{1,64}$/;

/** Starts the listener for the sign-in whose state is `state`; `onRefused` hears of every request it turned away. */
export async function listenForCallback(
  state: string,
  onRefused: (why: string) => void = () => undefined,
): Promise<LoopbackListener> {
  let settle!: (answer: CallbackAnswer) => void;
  const answer = new Promise<CallbackAnswer>((resolve) => (settle = resolve));
  let answered = false;
  let host = '';
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const refuse = (status: number, why: string) => {
      onRefused(why);
      page(res, status, 'Not this sign-in', why);
    };
    if (req.headers.host !== host) return refuse(421, `only ${host} is answered here`);
    if (req.method !== 'GET' || url.pathname !== '/callback') return refuse(404, 'only GET /callback is answered here');
    if (answered) return refuse(410, 'this sign-in is over');
    const params = url.searchParams;
    if (params.getAll('state').length !== 1 || !sameSecret(params.get('state')!, state)) {
      return refuse(400, 'this answer is not for the sign-in this command line started');
    }
    const code = params.get('code');
    const error = params.get('error');
    if (code !== null && CODE.test(code)) {
      answered = true;
      page(res, 200, 'Signed in', 'The command line is signed in: you can close this tab.');
      settle({ code });
    } else if (code === null && error !== null && ERROR.test(error)) {
      answered = true;
      page(res, 200, 'Sign-in cancelled', 'The command line was not signed in: you can close this tab.');
      settle({ error });
    } else {
      refuse(400, 'this answer carries neither a sign-in code nor a refusal');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    redirectUri: `http://${host}/callback`,
    answer,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A static page: no scripts, nothing loaded, not cached, no referrer (its URL carried the code). */
function page(res: http.ServerResponse, status: number, title: string, message: string) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    connection: 'close',
  });
  res.end(
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${title} · Gitspaces</title></head>` +
      `<body><h1>${title}</h1><p>${message}</p></body></html>\n`,
  );
}
