import { ConfigError } from './config';

/**
 * Runs a process's `main`: `start` reads the configuration and starts the part, returning how to stop it. SIGINT and
 * SIGTERM stop it cleanly; a configuration problem or a failed start is printed and exits non-zero.
 */
export function runMain(start: () => Promise<{ stop(): Promise<void> }>): void {
  start().then(
    (running) => {
      let stopping = false;
      const shutdown = () => {
        if (stopping) return;
        stopping = true;
        running.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            process.stderr.write(`stopping failed: ${describe(error)}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', shutdown);
      process.on('SIGTERM', shutdown);
    },
    (error: unknown) => {
      process.stderr.write(`${describe(error)}\n`);
      process.exit(error instanceof ConfigError ? 2 : 1);
    },
  );
}

function describe(error: unknown): string {
  if (error instanceof ConfigError) return error.message;
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
