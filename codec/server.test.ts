import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultPayloadConverter } from '@temporalio/common';
import { silentLogger } from '../common/logger';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA, PayloadKeyRing } from '../common/payload-codec';
import { CODEC_COOKIE, createCodecServer } from './server';

const UI_ORIGIN = 'http://127.0.0.1:8233';
const TOKEN = 'gsc_test-codec-token';
const b64 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('base64');
const text = (base64: string) => Buffer.from(base64, 'base64').toString('utf8');

/** Issue 11: the codec server shows plaintext only to a caller with the codec token, and only to the UI's origin. */
describe('the codec server', () => {
  const codec = new EncryptionCodec(PayloadKeyRing.parse(`k1:${randomBytes(32).toString('base64')}`));
  let server: Server;
  let url: string;
  let sealed: { metadata: Record<string, string>; data: string };
  const secret = { gitspaceId: 'gs-1', repository: 'https://git.example.com/acme/secret.git' };

  beforeAll(async () => {
    server = createCodecServer({ codec, token: TOKEN, allowedOrigins: [UI_ORIGIN], logger: silentLogger });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const [payload] = await codec.encode([defaultPayloadConverter.toPayload(secret)]);
    sealed = {
      metadata: Object.fromEntries(Object.entries(payload!.metadata!).map(([k, v]) => [k, b64(v)])),
      data: b64(payload!.data),
    };
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
      body: JSON.stringify(body),
    });

  it('refuses /decode and /encode without the token, or with a wrong one: 401, no plaintext, no ciphertext', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer gsc_wrong' },
      { authorization: `Basic ${TOKEN}` },
    ];
    for (const headers of attempts) {
      const decoded = await post('/decode', { payloads: [sealed] }, headers);
      expect(decoded.status).toBe(401);
      const body = await decoded.text();
      expect(body).not.toContain('git.example.com');
      expect(body).not.toContain(b64(Buffer.from(JSON.stringify(secret))).slice(0, 20));
      // Encoding is as powerful as decoding: it makes payloads every worker accepts.
      const encoded = await post('/encode', { payloads: [sealed] }, headers);
      expect(encoded.status).toBe(401);
    }
    const cookieWrong = await post('/decode', { payloads: [sealed] }, { cookie: `${CODEC_COOKIE}=nope` });
    expect(cookieWrong.status).toBe(401);
  });

  it('decodes with the token (bearer or the session cookie), and encodes a round trip', async () => {
    const decoded = await post('/decode', { payloads: [sealed] }, { authorization: `Bearer ${TOKEN}` });
    expect(decoded.status).toBe(200);
    const [plain] = ((await decoded.json()) as any).payloads;
    expect(text(plain.metadata.encoding)).toBe('json/plain');
    expect(JSON.parse(text(plain.data))).toEqual(secret);

    const encoded = await post('/encode', { payloads: [plain] }, { authorization: `Bearer ${TOKEN}` });
    expect(encoded.status).toBe(200);
    const [again] = ((await encoded.json()) as any).payloads;
    expect(text(again.metadata.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(again.metadata[KEY_ID_METADATA])).toBe('k1');
    expect(text(again.data)).not.toContain('git.example.com');
    // The same under a namespace path, as the CLI's --codec-endpoint templating calls it.
    expect((await post('/default/decode', { payloads: [sealed] }, { authorization: `Bearer ${TOKEN}` })).status).toBe(
      200,
    );
    expect((await post('/default/decode', { payloads: [sealed] })).status).toBe(401);
    const reopened = await codec.decode([
      {
        metadata: { encoding: Buffer.from(again.metadata.encoding, 'base64'), [KEY_ID_METADATA]: Buffer.from('k1') },
        data: Buffer.from(again.data, 'base64'),
      },
    ]);
    expect(defaultPayloadConverter.fromPayload(reopened[0]!)).toEqual(secret);

    // A browser signs in once; the cookie then stands for the token (the UI's "include credentials").
    const signIn = await fetch(`${url}/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(signIn.status).toBe(200);
    const setCookie = signIn.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    const viaCookie = await post(
      '/decode',
      { payloads: [sealed] },
      { cookie: setCookie.split(';')[0]!, origin: UI_ORIGIN },
    );
    expect(viaCookie.status).toBe(200);
    expect(viaCookie.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(viaCookie.headers.get('access-control-allow-credentials')).toBe('true');
    expect((await fetch(`${url}/session`, { method: 'POST', body: 'token=wrong' })).status).toBe(401);
  });

  it("shows a payload it cannot open as it is, and refuses bodies that are not the protocol's", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const plaintext = { metadata: { encoding: b64(Buffer.from('json/plain')) }, data: b64(Buffer.from('1')) };
    const mixed = await post('/decode', { payloads: [plaintext, sealed] }, auth);
    expect(mixed.status).toBe(200);
    const [first, second] = ((await mixed.json()) as any).payloads;
    expect(first).toEqual(plaintext);
    expect(JSON.parse(text(second.data))).toEqual(secret);

    expect((await post('/decode', { nope: [] }, auth)).status).toBe(400);
    expect((await post('/decode', { payloads: [{ data: '***' }] }, auth)).status).toBe(400);
    const notJson = await fetch(`${url}/decode`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(notJson.status).toBe(415);
    expect((await fetch(`${url}/decode`, { headers: auth })).status).toBe(405);
    expect((await fetch(`${url}/elsewhere`, { method: 'POST', headers: auth })).status).toBe(404);
    const huge = await post('/decode', { payloads: [{ data: 'A'.repeat(9 * 1024 * 1024) }] }, auth);
    expect(huge.status).toBe(413);
  });

  it('answers CORS preflights for the configured origin only', async () => {
    const preflight = (origin: string) =>
      fetch(`${url}/decode`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace,authorization',
        },
      });
    const allowed = await preflight(UI_ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(allowed.headers.get('access-control-allow-methods')).toContain('POST');
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/x-namespace/);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    expect(allowed.headers.get('vary')).toBe('Origin');

    for (const origin of [
      'https://evil.example',
      'http://127.0.0.1:8234',
      'http://127.0.0.1:8233.evil.example',
      'null',
    ]) {
      const refused = await preflight(origin);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      // The actual request from that origin, token and all, is refused too (a page elsewhere cannot use a cookie).
      const request = await post('/decode', { payloads: [sealed] }, { origin, authorization: `Bearer ${TOKEN}` });
      expect(request.status).toBe(403);
      expect(await request.text()).not.toContain('json/plain');
    }
  });
});
