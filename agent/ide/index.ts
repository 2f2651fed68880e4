import type express from 'express';
import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/logger';
import type { IdeKind } from '../../contracts/provider';
import { createTerminalIde } from './terminal';
import { createVscodeIde } from './vscode';

/**
 * The agent as IDE host: everything outside `/_agent/` is the IDE. `terminal` (and `ssh`, whose browser view is the
 * same terminal) serves the browser terminal at `/`; `vscode-web` proxies `/` to a VS Code server and keeps the
 * terminal at `/terminal/` as a fallback. Paths are relative to wherever the page is served (the gateway strips its
 * `/gitspaces/<id>` prefix).
 */

export interface IdeOptions {
  ide: IdeKind;
  workspaceDir: string;
  gitspaceId: string;
  logger: Logger;
  /** VS Code server command template with `{port}` and `{workspace}`; default: code-server or openvscode-server. */
  vscodeCommand?: string;
  /** The shell of the terminal; default `/bin/bash`. */
  shell?: string;
  /** Environment of the shell and the VS Code server; it must not carry the agent's own secrets. Default: none. */
  env?: Record<string, string>;
  /** Where to look for a VS Code server (the machine's PATH); default: the PATH in `env`. */
  searchPath?: string;
  /** How long the VS Code server may take to become healthy (default 60 s). */
  vscodeStartTimeoutMs?: number;
  /** Decides whether an upgrade may reach the IDE at all (the agent lets only the gateway's through). */
  authorizeUpgrade?: (req: IncomingMessage) => boolean;
}

export interface IdeHandle {
  /**
   * Resolves once the IDE can serve its page: at once for the terminal; for VS Code once its server is healthy, else
   * rejects with VscodeNotInstalledError or VscodeStartError. Called after the workspace is prepared.
   */
  ready(): Promise<void>;
  /** Stops what the IDE started (shells, the VS Code server). */
  close(): void;
}

const mounted = new WeakMap<http.Server, IdeHandle>();

/** Path of the fallback terminal beside VS Code. */
const VSCODE_TERMINAL_BASE = '/terminal/';

/** Mounts the chosen IDE on the agent's app (after the `/_agent/` routes) and takes the server's upgrades. */
export function mountIde(app: express.Express, server: http.Server, options: IdeOptions): IdeHandle {
  const logger = options.logger.child('ide');
  const env = options.env ?? {};
  const terminal = createTerminalIde({
    gitspaceId: options.gitspaceId,
    workspaceDir: options.workspaceDir,
    logger: logger.child('terminal'),
    shell: options.shell ?? '/bin/bash',
    env,
  });
  let onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  let handle: IdeHandle;

  if (options.ide === 'vscode-web') {
    const vscode = createVscodeIde({
      workspaceDir: options.workspaceDir,
      logger: logger.child('vscode'),
      command: options.vscodeCommand,
      searchPath: options.searchPath ?? env.PATH ?? '',
      env,
      ...(options.vscodeStartTimeoutMs !== undefined ? { startTimeoutMs: options.vscodeStartTimeoutMs } : {}),
      terminalPath: VSCODE_TERMINAL_BASE.slice(1),
    });
    // `/terminal` without its slash would break the page's relative URLs (routing ignores trailing slashes).
    app.get(VSCODE_TERMINAL_BASE.slice(0, -1), (req, res, next) =>
      req.originalUrl.split('?')[0] === VSCODE_TERMINAL_BASE.slice(0, -1)
        ? res.redirect(308, VSCODE_TERMINAL_BASE.slice(1))
        : next(),
    );
    app.use(VSCODE_TERMINAL_BASE.slice(0, -1), terminal.router);
    app.use((req, res, next) => (req.path.startsWith('/_agent/') ? next() : vscode.handleRequest(req, res)));
    onUpgrade = (req, socket, head) => {
      if (!terminal.handleUpgrade(req, socket, head, VSCODE_TERMINAL_BASE)) vscode.handleUpgrade(req, socket, head);
    };
    handle = {
      ready: () => vscode.ready(),
      close: () => {
        terminal.close();
        vscode.close();
      },
    };
  } else {
    app.use('/', terminal.router);
    onUpgrade = (req, socket, head) => {
      if (!terminal.handleUpgrade(req, socket, head, '/'))
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    };
    handle = { ready: () => Promise.resolve(), close: () => terminal.close() };
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (options.authorizeUpgrade && !options.authorizeUpgrade(req)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    onUpgrade(req, socket, head);
  });
  mounted.set(server, handle);
  logger.info('IDE mounted', { ide: options.ide });
  return handle;
}

/** Stops the IDE mounted on this server, if any (the agent's shutdown). */
export function closeIde(server: http.Server): void {
  mounted.get(server)?.close();
  mounted.delete(server);
}
