import { ApiError, createClient, errorOf, fieldErrors } from './client';

/** A fetch that records what it was asked and answers `response`. */
function recordingFetch(response: () => Response) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return response();
  }) as typeof globalThis.fetch;
  return { calls, fetch };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('the dashboard API client', () => {
  test('sends the session CSRF token on every state-changing request, never on reads', async () => {
    const { calls, fetch } = recordingFetch(() => json(200, {}));
    const client = createClient({ fetch });
    client.setCsrfToken('csrf-1');
    await client.request('/api/v1/gitspaces');
    for (const method of ['POST', 'PATCH', 'PUT', 'DELETE'] as const) {
      await client.request('/api/v1/gitspaces/gs-1', { method, body: {} });
    }
    const headers = calls.map((call) => call.init.headers as Record<string, string>);
    expect(headers[0]?.['x-csrf-token']).toBeUndefined();
    expect(headers.slice(1).map((h) => h['x-csrf-token'])).toEqual(['csrf-1', 'csrf-1', 'csrf-1', 'csrf-1']);
    expect(calls.every((call) => call.init.credentials === 'same-origin')).toBe(true);
    expect(calls[1]?.init.body).toBe('{}');
  });

  test("turns the API's error into code, message and field problems", async () => {
    const { fetch } = recordingFetch(() =>
      json(400, {
        error: {
          code: 'invalid_request',
          message: 'the request body is invalid: repository.url must be a URL',
          fields: [
            { path: 'repository.url', message: 'must be a URL' },
            { path: 'config.region', message: "must be a GCP region such as 'europe-west1'" },
            { nonsense: true },
          ],
        },
      }),
    );
    const failure = await createClient({ fetch })
      .request('/api/v1/gitspaces', { method: 'POST', body: {} })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApiError);
    expect(failure).toMatchObject({ status: 400, code: 'invalid_request' });
    expect(fieldErrors(failure, 'repository.url')).toEqual(['must be a URL']);
    expect(fieldErrors(failure, 'config')).toEqual(["region: must be a GCP region such as 'europe-west1'"]);
    expect(fieldErrors(failure, 'repository')).toEqual(['url: must be a URL']);
    expect(fieldErrors(failure, 'name')).toEqual([]);
  });

  test('describes an answer that is not the API’s own error by its status', async () => {
    const proxyPage = await errorOf(
      new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }),
    );
    expect(proxyPage).toMatchObject({ status: 502, code: 'http_502', message: 'The server answered 502 Bad Gateway.' });
    const limited = await errorOf(new Response('', { status: 429, headers: { 'retry-after': '7' } }));
    expect(limited.message).toBe('Too many requests; try again in 7 seconds.');
  });

  test('a 401 ends the session, except when the session itself is being asked for', async () => {
    let ended = 0;
    const { fetch } = recordingFetch(() => json(401, { error: { code: 'unauthenticated', message: 'sign in' } }));
    const client = createClient({ fetch, onUnauthenticated: () => ended++ });
    await expect(client.request('/api/v1/session')).rejects.toMatchObject({ status: 401 });
    expect(ended).toBe(0);
    await expect(client.request('/api/v1/gitspaces')).rejects.toMatchObject({ status: 401 });
    expect(ended).toBe(1);
  });

  test('an unreachable API is a network error a person can read', async () => {
    const fetch = (async () => {
      throw new TypeError('fetch failed');
    }) as typeof globalThis.fetch;
    await expect(createClient({ fetch }).request('/api/v1/gitspaces')).rejects.toMatchObject({
      status: 0,
      code: 'network',
    });
  });
});
