/**
 * The code-server release gitspace machines get (providers/bootstrap.ts installs it) and the agent's messages name.
 * It runs on the agent's pinned Node.js (providers/node-runtime.ts), so its major must be that one's: 4.117.0 is the
 * last release whose `engines.node` is 22 (later ones want 24).
 */
export const CODE_SERVER = {
  version: '4.117.0',
  /** The Node.js major of its `engines.node` (checked against NODE_RUNTIME in providers/bootstrap.test.ts). */
  nodeMajor: 22,
} as const;
