export { startGitspace, stopGitspace, deleteGitspace } from './gitspace-lifecycle';
export { reconcileInfrastructure } from './reconcile';
export { autoStopGitspace } from './auto-stop';
export { pruneRecords } from './prune';
export { maintainWarmPool } from './warm-pool';
