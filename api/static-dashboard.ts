import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { sendPage } from './auth/pages';

/** Paths the API answers itself: never the dashboard's, whatever the request accepts. */
const API_PATHS = /^\/(api|auth)(\/|$)|^\/(healthz|readyz|metrics)$/;

/**
 * The dashboard's policy: its own scripts, styles and images only (Vite's build has no inline script or style; small
 * assets may be inlined as data: URLs), calls and event streams to this origin, never framed.
 */
export const DASHBOARD_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** `dist/web` of this package: beside the sources, or above `dist/` in the released package. */
export function defaultDashboardDir(): string {
  for (let dir = __dirname; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'web');
  }
  return path.resolve(__dirname, '..', 'dist', 'web');
}

/**
 * The dashboard (`npm run build:web` into dist/web) at `/`: hashed assets cached for a year, index.html revalidated
 * every time (so a new build is seen at once), and index.html for every GET a browser makes for a page on a path the
 * API does not own, so the dashboard's own routes (`/gitspaces/…`, `/open/…`) load on reload.
 */
export function serveDashboard(dir: string): RequestHandler {
  const assets = express.static(dir, {
    index: false,
    redirect: false,
    setHeaders(res, file) {
      res.set('x-content-type-options', 'nosniff');
      const hashed = path.relative(dir, file).startsWith(`assets${path.sep}`);
      res.set('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const index = path.join(dir, 'index.html');

  const sendIndex = (res: Response) => {
    if (!existsSync(index)) {
      sendPage(res, 503, {
        title: 'The dashboard is not built',
        message: `There is no ${index}. Build it with "npm run build:web" (or "npm run build"), then reload; the REST API works meanwhile at /api/v1.`,
        link: { href: '/api/v1/openapi.json', text: 'The REST API' },
      });
      return;
    }
    res.set({
      'content-security-policy': DASHBOARD_POLICY,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'same-origin',
    });
    res.sendFile(index);
  };
  // A browser's navigation asks for text/html by name; a script's `*/*` gets the API's JSON 404 instead.
  const wantsPage = (req: Request) => (req.get('accept') ?? '').includes('text/html');

  return (req, res, next) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || API_PATHS.test(req.path)) return next();
    if (req.path === '/' || req.path === '/index.html') return sendIndex(res);
    assets(req, res, () => (wantsPage(req) ? sendIndex(res) : next()));
  };
}
