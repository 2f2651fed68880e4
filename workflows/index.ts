export { startGitspace, stopGitspace, deleteGitspace } from './lifecycle';
export { reconcileInfrastructure } from './reconcile';
