/** How long a machine of an unknown gitspace is kept, stopped, before reconciliation deletes it. */
export const DEFAULT_ORPHAN_GRACE_SECONDS = 3600;
