import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random id such as `gs-k3v9x2m7q1wz`: lowercase letters and digits after the prefix, so it is valid as a DNS
 * label, a GCP instance name and an AWS tag value.
 */
export function newId(prefix: string, length = 12): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length];
  return `${prefix}-${out}`;
}

/** A bearer token: 32 random bytes, with a prefix so leaked tokens are recognisable by secret scanners. */
export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}
