/**
 * What a browser does in a sign-in, for tests over HTTP: a cookie jar (per host, ports sharing it as in browsers; Path,
 * Max-Age and Expires honoured; HttpOnly cookies sent like any other) and navigation that follows redirects one hop
 * at a time, keeping every hop's cookies.
 */

interface StoredCookie {
  name: string;
  value: string;
  host: string;
  path: string;
  expiresAt: number;
}

export interface Page {
  /** The last URL asked for. */
  url: URL;
  response: Response;
  body: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class TestBrowser {
  private readonly cookies = new Map<string, StoredCookie>();

  /** The value of a cookie this browser would send to `url` (undefined when it has none). */
  cookie(url: string, name: string): string | undefined {
    return this.matching(new URL(url)).find((cookie) => cookie.name === name)?.value;
  }

  /** Sets a cookie by hand, as an attacker who copied it would (host-wide, path `/`). */
  plant(url: string, name: string, value: string, path = '/'): void {
    const { hostname } = new URL(url);
    this.cookies.set(`${hostname}|${path}|${name}`, { name, value, host: hostname, path, expiresAt: Infinity });
  }

  /** One request with this browser's cookies; its Set-Cookie kept. Redirects are not followed. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    const cookie = this.matching(target)
      .map(({ name, value }) => `${name}=${value}`)
      .join('; ');
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) this.keep(target, line);
    return response;
  }

  /**
   * Navigates to `url` and follows redirects (a 303 or 302 after a POST becomes a GET) until a page answers, or until
   * `stopBefore` picks a redirect target, which is then returned without being asked for (its response is the redirect).
   */
  async navigate(
    url: string,
    init: RequestInit = {},
    stopBefore: (url: URL) => boolean = () => false,
  ): Promise<Page & { stoppedAt?: URL }> {
    let current = new URL(url);
    let request = init;
    for (let hop = 0; hop < 20; hop++) {
      const response = await this.fetch(current.href, {
        ...request,
        headers: { accept: 'text/html', ...(request.headers as Record<string, string> | undefined) },
      });
      const location = response.headers.get('location');
      if (!REDIRECTS.has(response.status) || !location) {
        return { url: current, response, body: await response.text() };
      }
      await response.arrayBuffer();
      const next = new URL(location, current);
      if (stopBefore(next)) return { url: current, response, body: '', stoppedAt: next };
      current = next;
      if (response.status !== 307 && response.status !== 308) request = {};
    }
    throw new Error(`more than 20 redirects from ${url}`);
  }

  private matching(url: URL): StoredCookie[] {
    const now = Date.now();
    return [...this.cookies.values()]
      .filter(
        (cookie) => cookie.host === url.hostname && cookie.expiresAt > now && pathMatches(url.pathname, cookie.path),
      )
      .sort((a, b) => b.path.length - a.path.length);
  }

  private keep(url: URL, line: string): void {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let path = url.pathname.slice(0, url.pathname.lastIndexOf('/')) || '/';
    let expiresAt = Infinity;
    for (const attribute of attributes) {
      const [key, ...rest] = attribute.split('=');
      const argument = rest.join('=');
      if (key!.toLowerCase() === 'path' && argument.startsWith('/')) path = argument;
      if (key!.toLowerCase() === 'expires') expiresAt = Math.min(expiresAt, Date.parse(argument));
      if (key!.toLowerCase() === 'max-age') expiresAt = Date.now() + Number(argument) * 1000;
    }
    const key = `${url.hostname}|${path}|${name}`;
    if (expiresAt <= Date.now()) this.cookies.delete(key);
    else this.cookies.set(key, { name, value, host: url.hostname, path, expiresAt });
  }
}

/** RFC 6265 path-match. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath.charAt(cookiePath.length) === '/';
}

/** The first form of a page: where it posts, and its inputs with their values. */
export function formOf(page: Page): { action: URL; fields: Record<string, string> } | undefined {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(page.body);
  if (!form) return undefined;
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    if (name) fields[name] = unescapeHtml(/value="([^"]*)"/.exec(input[0])?.[1] ?? '');
  }
  return { action: new URL(unescapeHtml(form[1]!), page.url), fields };
}

const unescapeHtml = (text: string) =>
  text
    .replace(/&#x2F;/gi, '/')
    .replace(/&#39;|&#x27;/gi, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
