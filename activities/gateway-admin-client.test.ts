import { newRouteSecret, startHarness, type Harness } from '../test/support/gateway-harness';
import { createGatewayAdminClient, GatewayAdminError } from './gateway-admin-client';

/** The runner's client against the real gateway admin listener. */
describe('the gateway admin client', () => {
  let h: Harness;
  beforeAll(async () => (h = await startHarness()));
  afterAll(() => h.close());

  const client = (token = h.adminToken) => createGatewayAdminClient({ url: h.adminUrl, token });
  const registration = { target: 'http://127.0.0.1:9', secret: newRouteSecret(), runId: 'run-1' };

  it('registers a route, reads its activity, removes it (twice: a second removal is done too)', async () => {
    await client().putRoute('gs-client', registration);
    expect((await h.admin('GET', '/routes')).body).toMatchObject({
      routes: [{ gitspaceId: 'gs-client', target: registration.target }],
    });
    expect(await client().activity('gs-client')).toEqual({
      idleSeconds: expect.any(Number),
      openWebSockets: 0,
      openSshSessions: 0,
    });
    await client().deleteRoute('gs-client');
    await client().deleteRoute('gs-client');
    expect((await h.admin('GET', '/routes')).body).toEqual({ routes: [] });
  });

  it('throws GatewayAdminError with the status and the answer for a refusal', async () => {
    for (const call of [
      () => client('wrong').putRoute('gs-client', registration),
      () => client('wrong').deleteRoute('gs-client'),
      () => client('wrong').activity('gs-client'),
    ]) {
      const error = await call().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(GatewayAdminError);
      expect(error).toMatchObject({ status: 401, message: expect.stringContaining('answered 401') });
    }
    const invalid = client().putRoute('gs-client', { ...registration, target: 'ftp://x' });
    await expect(invalid).rejects.toMatchObject({ status: 400, message: expect.stringContaining('gs-client') });
  });
});
