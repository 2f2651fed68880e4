/**
 * What every command is given: the terminal it runs in, the settings main read from the environment, and the API
 * client made from the stored or overriding credentials. Nothing here reads process.env (main does).
 */
import { createApiClient, type ApiClient } from './api-client';
import type { BrowserOpener } from './browser';
import { chooseCredentials, credentialsFile, type CredentialsFile, type CredentialsOverride } from './credentials';
import { createProgress, type Progress } from './progress';

export interface CliIo {
  stdin: NodeJS.ReadStream;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Whether a person is typing (a delete asks to confirm, login asks for the token). */
  stdinIsTerminal: boolean;
  /** Whether progress may rewrite its line in place. */
  stderrIsTerminal: boolean;
  /** Calls `listener` on Ctrl-C until the returned function is called; while one listens, Ctrl-C does not exit. */
  onInterrupt(listener: () => void): () => void;
}

export interface CliSettings {
  /** `$XDG_CONFIG_HOME/gitspaces`, where credentials.json is. */
  configDir: string;
  /** GITSPACES_URL and GITSPACES_TOKEN. */
  override: CredentialsOverride;
  /** What opens a URL in a browser (xdg-open, open), when there is a display to open it on (cli/browser.ts). */
  browserOpener?: BrowserOpener;
}

export interface CliContext {
  readonly io: CliIo;
  readonly settings: CliSettings;
  readonly credentials: CredentialsFile;
  /** Lines for a person, on stdout. */
  print(lines: string | readonly string[]): void;
  /** One JSON document on stdout (`--json`). */
  printJson(value: unknown): void;
  /** A line on stderr that is not the command's result (what was opened, what goes on). */
  note(line: string): void;
  /** The API client for the stored credentials, or GITSPACES_URL / GITSPACES_TOKEN. */
  connect(): Promise<ApiClient>;
  progress(): Progress;
  /** An AbortSignal that fires on Ctrl-C, until `dispose`. */
  interruptible(): { signal: AbortSignal; dispose(): void };
}

export function createContext(io: CliIo, settings: CliSettings): CliContext {
  const credentials = credentialsFile(settings.configDir);
  return {
    io,
    settings,
    credentials,
    print(lines) {
      for (const line of typeof lines === 'string' ? [lines] : lines) io.stdout.write(`${line}\n`);
    },
    printJson: (value) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    note: (line) => io.stderr.write(`${line}\n`),
    async connect() {
      const { override } = settings;
      // With both variables set, the file is not needed (nor read: a CI job's runner may have none).
      const stored = override.url !== undefined && override.token !== undefined ? undefined : await credentials.load();
      return createApiClient(chooseCredentials(stored, override));
    },
    progress: () => createProgress(io.stderr, io.stderrIsTerminal),
    interruptible() {
      const controller = new AbortController();
      const dispose = io.onInterrupt(() => controller.abort());
      return { signal: controller.signal, dispose };
    },
  };
}
