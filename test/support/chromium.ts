import path from 'node:path';

/** Debian's chromium package: the tests never download a browser. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless, and quiet: no first-run pages, background fetches, updates or sync that would leave loopback. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where browser tests leave their screenshots (ignored by git). */
export const TEST_ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
