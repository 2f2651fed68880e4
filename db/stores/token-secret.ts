import { createHash } from 'node:crypto';
import { newId, newToken } from '../../common/ids';
import type { Db } from '../connect';

/** What the database keeps of an API token: its hash, never the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Makes a new API token for a user and stores its hash; the token itself is returned once, to be shown once. */
export async function issueToken(db: Db, userId: string, name: string | null = null) {
  const token = newToken('gsp');
  const row = await db
    .insertInto('apiTokens')
    .values({ id: newId('tok'), userId, tokenHash: hashToken(token), lastUsedAt: null, name })
    .returning(['id', 'name', 'createdAt'])
    .executeTakeFirstOrThrow();
  return { ...row, token };
}
