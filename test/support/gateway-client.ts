/** How a gitspace opened through the gateway: the token exchange's status (or `redirect`), then the IDE page's. */
export interface Opened {
  exchange: number | 'redirect';
  page?: number;
  /** The page is an HTML document. */
  html?: boolean;
}

/**
 * Opens a gitspace through the gateway as a browser does: the access URL's token exchanged for a session cookie (a
 * redirect to a URL without the token), then the IDE page with that cookie. A refused exchange gives its status.
 */
export async function openThroughGateway(accessUrl: string): Promise<Opened> {
  const exchange = await fetch(accessUrl, { redirect: 'manual' });
  const location = exchange.headers.get('location');
  const cookie = exchange.headers.get('set-cookie')?.split(';')[0];
  if (![302, 303].includes(exchange.status) || !location || !cookie) return { exchange: exchange.status };
  expect(location).not.toContain('token=');
  const page = await fetch(new URL(location, accessUrl), { headers: { cookie } });
  return { exchange: 'redirect', page: page.status, html: (await page.text()).includes('<html') };
}
