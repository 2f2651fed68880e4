import { createHash, timingSafeEqual } from 'node:crypto';

/** Whether two secrets are equal, compared in constant time whatever their lengths (their digests are compared). */
export function sameSecret(a: string, b: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}
