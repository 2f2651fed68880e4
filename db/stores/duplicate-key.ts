import { ConflictError } from '../../common/errors';

/** Turns a unique-key violation (SQLSTATE 23505, from PostgreSQL and PGlite alike) into a ConflictError. */
export function conflictOnDuplicate(message: string): (error: unknown) => never {
  return (error) => {
    if ((error as { code?: unknown }).code === '23505') throw new ConflictError(message);
    throw error;
  };
}
