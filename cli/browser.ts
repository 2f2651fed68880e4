/** Opening a URL in the user's browser, for `open` and `login --web`. */
import { spawn } from 'node:child_process';
import type { CliContext } from './context';

/** A program that opens a URL given as its argument (xdg-open, open), or a function doing it (tests, in-process). */
export type BrowserOpener = string | ((url: string) => void);

/** Opens `url` with the settings' browser opener: false when there is none (an SSH session, no display). */
export function openInBrowser(context: CliContext, url: string): boolean {
  const opener = context.settings.browserOpener;
  if (!opener) return false;
  if (typeof opener === 'function') {
    opener(url);
    return true;
  }
  // The browser outlives this command; its output is not ours to show.
  const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
  child.on('error', (error) => context.note(`could not open a browser with ${opener}: ${error.message}`));
  child.unref();
  return true;
}
