import { createOperationActivities, type OperationActivityDeps } from './operations';
import { createReconciliationActivities, type ReconciliationActivityDeps } from './reconciliation';

export type { BeginResult } from './operations';
export type { ReconcilePlan, ReconcileResult } from './reconciliation';

export interface ControlPlaneActivityDeps extends OperationActivityDeps, ReconciliationActivityDeps {}

/**
 * Bookkeeping activities: they run on the control-plane task queue, next to the database, and are the only code in
 * a lifecycle that writes gitspace state. The operations' (activities/operations.ts) and reconciliation's
 * (activities/reconciliation.ts), registered together under their own names.
 */
export function createControlPlaneActivities(deps: ControlPlaneActivityDeps) {
  return { ...createOperationActivities(deps), ...createReconciliationActivities(deps) };
}

export type ControlPlaneActivities = ReturnType<typeof createControlPlaneActivities>;
