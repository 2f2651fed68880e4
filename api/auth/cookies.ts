import type { Request, Response } from 'express';

/** A cookie the request carries, by name (the first, as browsers send the most specific path first). */
export function cookieOf(req: Request, name: string): string | undefined {
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** Where and how long a cookie lives: always HttpOnly and SameSite=Lax; Secure when the public URL is https. */
export interface CookieScope {
  path: string;
  secure: boolean;
}

export function setCookie(res: Response, name: string, value: string, scope: CookieScope, maxAgeSeconds: number) {
  res.cookie(name, value, { ...attributes(scope), maxAge: maxAgeSeconds * 1000 });
}

export function clearCookie(res: Response, name: string, scope: CookieScope) {
  res.clearCookie(name, attributes(scope));
}

const attributes = (scope: CookieScope) =>
  ({ path: scope.path, secure: scope.secure, httpOnly: true, sameSite: 'lax' }) as const;
