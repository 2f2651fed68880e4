/**
 * The whole stack (test/support/stack.ts) with the API signing users in through an OpenID Connect provider, for the
 * dashboard's browser test (test/dashboard.test.ts), in a process of its own: openid-client is an ES module jest
 * cannot load. The sign-in settings are read from this process's environment as api/main.ts reads them
 * (GITSPACES_OIDC_*, GITSPACES_SESSION_*); GITSPACES_API_PORT fixes the API's port (the provider knows its callback),
 * and the gateway sends a browser without a session to the dashboard. The API serves the built dashboard (dist/web).
 * Prints `DASHBOARD_STACK_READY <json>` with the API's URL, the gateway's and the admin token once up.
 */
import { readSignInSettings } from '../../api/auth/settings';
import { ConfigReader } from '../../common/config';
import { startTestStack } from './stack';

async function main() {
  const config = new ConfigReader(process.env);
  const apiPort = config.port('GITSPACES_API_PORT', 0);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const signIn = readSignInSettings(config, apiUrl);
  config.done();
  const stack = await startTestStack({ apiPort, signIn, dashboardUrl: apiUrl });
  process.stdout.write(
    `DASHBOARD_STACK_READY ${JSON.stringify({
      apiUrl: stack.controlPlane.url,
      gatewayUrl: stack.gatewayUrl,
      adminToken: stack.controlPlane.adminToken,
    })}\n`,
  );
  process.on('SIGTERM', () => void stack.stop().then(() => process.exit(0)));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
