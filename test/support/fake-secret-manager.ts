import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Test support: GCP Secret Manager's one REST call the runner makes (`versions/latest:access`), on loopback. Secret
 * Manager has no emulator, so this stands at the HTTP edge; the real client library talks to it over its REST
 * transport. It answers 401 without a bearer token, and 404 (as the real API does) for a secret it does not hold.
 */
export interface FakeSecretManager {
  url: string;
  /** Full secret names (`projects/<p>/secrets/<id>`) to their latest value. */
  secrets: Map<string, string>;
  /** The secret names asked for, in order. */
  asked: string[];
  stop(): Promise<void>;
}

export async function startFakeSecretManager(): Promise<FakeSecretManager> {
  const secrets = new Map<string, string>();
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const match = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+)\/versions\/latest:access(\?|$)/.exec(req.url ?? '');
    if (!req.headers.authorization?.startsWith('Bearer ')) {
      return answer(401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'no credentials' } });
    }
    if (req.method !== 'GET' || !match?.[1]) {
      return answer(404, { error: { code: 404, status: 'NOT_FOUND', message: 'no such method' } });
    }
    asked.push(match[1]);
    const value = secrets.get(match[1]);
    if (value === undefined) {
      return answer(404, { error: { code: 404, status: 'NOT_FOUND', message: `Secret [${match[1]}] not found` } });
    }
    answer(200, {
      name: `${match[1]}/versions/1`,
      payload: { data: Buffer.from(value).toString('base64') },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    secrets,
    asked,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
