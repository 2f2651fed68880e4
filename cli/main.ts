#!/usr/bin/env node
/**
 * `gitspaces`, the command line of Gitspaces: reads its settings from the environment, runs one command, and exits
 * with the code that says how it went (cli/errors.ts, EXIT_CODES).
 */
import { createContext, type CliIo, type CliSettings } from './context';
import { configDirectory } from './credentials';
import { ChildExit, EXIT_CODES, type ExitCode } from './errors';
import { errorJson, formatError } from './format';
import { buildProgram } from './program';

/** The program that opens a URL in the browser: only where a browser can show it (a desktop, not an SSH session). */
function browserOpener(env: NodeJS.ProcessEnv): string | undefined {
  if (process.platform === 'darwin') return 'open';
  if (process.platform === 'linux' && (env.DISPLAY || env.WAYLAND_DISPLAY)) return 'xdg-open';
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const env = process.env;
  const settings: CliSettings = {
    configDir: configDirectory(env),
    override: {
      ...(env.GITSPACES_URL ? { url: env.GITSPACES_URL } : {}),
      ...(env.GITSPACES_TOKEN ? { token: env.GITSPACES_TOKEN } : {}),
    },
    ...(browserOpener(env) ? { browserOpener: browserOpener(env) } : {}),
  };
  const io: CliIo = {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTerminal: process.stdin.isTTY === true,
    stderrIsTerminal: process.stderr.isTTY === true,
    onInterrupt(listener) {
      process.on('SIGINT', listener);
      return () => process.off('SIGINT', listener);
    },
  };
  const context = createContext(io, settings);
  const program = await buildProgram(context);
  try {
    await program.parseAsync(argv);
    return EXIT_CODES.ok;
  } catch (error) {
    if (isCommanderError(error)) {
      // Commander has printed its message (or the help, or the version) already.
      return error.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
    }
    if (error instanceof ChildExit) return error.exitCode;
    if (argv.includes('--json')) io.stdout.write(`${JSON.stringify(errorJson(error), null, 2)}\n`);
    for (const line of formatError(error)) io.stderr.write(`${line}\n`);
    return (error as { exitCode?: ExitCode }).exitCode ?? EXIT_CODES.api;
  }
}

/** commander's own errors (usage, help, version) carry a `commander.*` code and the exit code it wants. */
function isCommanderError(error: unknown): error is { exitCode: number } {
  return error instanceof Error && String((error as { code?: unknown }).code).startsWith('commander.');
}

void main(process.argv).then((code) => {
  process.exitCode = code;
});
