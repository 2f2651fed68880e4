import { escapeHtml } from '../../common/html';
import type { Response } from 'express';

/** The only policy a page of the API itself needs: no scripts, styles, frames or forms of any kind. */
const PAGE_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * A small page for a person's browser (a failed sign-in, a dashboard not built): what went wrong in a sentence, and a
 * link to go on from there.
 */
export function sendPage(
  res: Response,
  status: number,
  page: { title: string; message: string; link: { href: string; text: string } },
): void {
  res
    .status(status)
    .set({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': PAGE_POLICY,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    })
    .send(
      [
        '<!doctype html>',
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        `<title>${escapeHtml(page.title)} · Gitspaces</title></head>`,
        '<body>',
        `<h1>${escapeHtml(page.title)}</h1>`,
        `<p>${escapeHtml(page.message)}</p>`,
        `<p><a href="${escapeHtml(page.link.href)}">${escapeHtml(page.link.text)}</a></p>`,
        '</body>',
        '</html>',
      ].join('\n'),
    );
}
