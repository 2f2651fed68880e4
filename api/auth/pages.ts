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
  sendHtml(res, status, {
    title: page.title,
    policy: PAGE_POLICY,
    body: [
      `<h1>${escapeHtml(page.title)}</h1>`,
      `<p>${escapeHtml(page.message)}</p>`,
      `<p><a href="${escapeHtml(page.link.href)}">${escapeHtml(page.link.text)}</a></p>`,
    ],
  });
}

/**
 * An HTML page of the API, never cached, framed or sniffed, under its content security `policy`; `body` is HTML its
 * caller has escaped. No referrer is sent from it unless a form on it needs its Origin sent (`same-origin`).
 */
export function sendHtml(
  res: Response,
  status: number,
  page: { title: string; policy: string; body: string[]; referrerPolicy?: 'no-referrer' | 'same-origin' },
) {
  res
    .status(status)
    .set({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': page.policy,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': page.referrerPolicy ?? 'no-referrer',
    })
    .send(
      [
        '<!doctype html>',
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        `<title>${escapeHtml(page.title)} · Gitspaces</title></head>`,
        '<body>',
        ...page.body,
        '</body>',
        '</html>',
      ].join('\n'),
    );
}
