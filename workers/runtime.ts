import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

let installed = false;

/**
 * Installs the Temporal worker runtime once per process with a log level: the SDK logs every worker state change at
 * INFO, which buries our own logs. Signals are left to the process's own shutdown (common/main.ts), which stops the
 * worker in order with everything else; the SDK's default handlers would start a second, racing shutdown on Ctrl-C.
 * Must run before the first worker connection.
 */
export function installWorkerRuntime(level: LogLevel = 'WARN'): void {
  if (installed) return;
  Runtime.install({ logger: new DefaultLogger(level), shutdownSignals: [] });
  installed = true;
}
