import { createAutoStopActivities, type AutoStopActivityDeps } from './auto-stop';
import { createOperationActivities, type OperationActivityDeps } from './operations';
import { createReconciliationActivities, type ReconciliationActivityDeps } from './reconciliation';

export type { BeginResult } from './operations';
export type { ReconcilePlan, ReconcileResult } from './reconciliation';

export interface ControlPlaneActivityDeps
  extends OperationActivityDeps, ReconciliationActivityDeps, AutoStopActivityDeps {}

/**
 * Bookkeeping activities: they run on the control-plane task queue, next to the database, and are the only code in
 * a lifecycle that writes gitspace state. The operations' (activities/operations.ts) and reconciliation's
 * (activities/reconciliation.ts) and the auto-stop's (activities/auto-stop.ts), registered together under their own names.
 */
export function createControlPlaneActivities(deps: ControlPlaneActivityDeps) {
  return {
    ...createOperationActivities(deps),
    ...createReconciliationActivities(deps),
    ...createAutoStopActivities(deps),
  };
}

export type ControlPlaneActivities = ReturnType<typeof createControlPlaneActivities>;
