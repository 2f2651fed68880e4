export { startGitspace, stopGitspace, deleteGitspace } from './lifecycle';
