/**
 * The API's resources as the CLI reads them: inferred from the API's own zod schemas (types only; the CLI loads
 * nothing of the server), so a renamed field fails the CLI's type check instead of its users.
 */
import type { z } from 'zod';
import type {
  AccessGrant as AccessGrantSchema,
  Event as EventSchema,
  Gitspace as GitspaceSchema,
  Infrastructure as InfrastructureSchema,
  Machine as MachineSchema,
  Operation as OperationSchema,
  SshKey as SshKeySchema,
  User as UserSchema,
} from '../api/schemas';

export type Gitspace = z.infer<typeof GitspaceSchema>;
export type Operation = z.infer<typeof OperationSchema>;
export type GitspaceEvent = z.infer<typeof EventSchema>;
export type Infrastructure = z.infer<typeof InfrastructureSchema>;
export type Machine = z.infer<typeof MachineSchema>;
export type AccessGrant = z.infer<typeof AccessGrantSchema>;
export type User = z.infer<typeof UserSchema>;
export type SshKey = z.infer<typeof SshKeySchema>;

/** A collection answer; GET /gitspaces adds `nextCursor` while more pages follow. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}
