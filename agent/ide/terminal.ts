import express from 'express';
import { existsSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import * as pty from 'node-pty';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../../common/logger';
import { TERMINAL_CLIENT_SCRIPT, terminalPage } from './terminal-page';

/**
 * The `terminal` IDE: a page with xterm.js and, per WebSocket at `<base>pty`, a real shell in a pseudo-terminal in the
 * workspace directory. Messages from the browser are JSON (`{type:'input',data}` or `{type:'resize',cols,rows}`);
 * messages to it are the shell's raw output.
 */

export interface TerminalIdeOptions {
  gitspaceId: string;
  workspaceDir: string;
  logger: Logger;
  /** The shell to run, e.g. `/bin/bash`. */
  shell: string;
  /** The shell's environment (without the agent's secrets). */
  env: Record<string, string>;
}

export interface TerminalIde {
  /** Serves the page and its assets; mount it at the terminal's base path. */
  router: express.Router;
  /** Takes a WebSocket upgrade for `<base>pty`; returns false when the path is not the terminal's. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, basePath: string): boolean;
  /** Ends every shell. */
  close(): void;
}

/** Output waiting in a socket above which the shell is paused (a `cat` of a huge file must not eat the memory). */
const HIGH_WATER_BYTES = 1024 * 1024;
const LOW_WATER_BYTES = 128 * 1024;

const XTERM_DIR = path.dirname(require.resolve('@xterm/xterm/package.json'));
const FIT_DIR = path.dirname(require.resolve('@xterm/addon-fit/package.json'));
const ASSETS: Record<string, string> = {
  'xterm.js': path.join(XTERM_DIR, 'lib/xterm.js'),
  'xterm.css': path.join(XTERM_DIR, 'css/xterm.css'),
  'addon-fit.js': path.join(FIT_DIR, 'lib/addon-fit.js'),
};

/** Builds the terminal IDE; shells start only when a browser connects. */
export function createTerminalIde(options: TerminalIdeOptions): TerminalIde {
  const { logger } = options;
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const router = express.Router();
  const page = terminalPage(options.gitspaceId, options.workspaceDir);

  router.get('/', (_req, res) => {
    res.type('html').set('cache-control', 'no-store').send(page);
  });
  router.get('/terminal.js', (_req, res) => {
    res.type('js').set('cache-control', 'no-cache').send(TERMINAL_CLIENT_SCRIPT);
  });
  router.get('/assets/:name', (req, res) => {
    const file = ASSETS[req.params.name];
    if (!file) return void res.status(404).type('text').send('no such asset');
    res.sendFile(file, { maxAge: '1h' });
  });

  function startSession(ws: WebSocket): void {
    sockets.add(ws);
    ws.on('error', () => ws.terminate());
    // Before the first clone the workspace does not exist yet; the shell starts in its parent instead of failing.
    const cwd = existsSync(options.workspaceDir) ? options.workspaceDir : path.dirname(options.workspaceDir);
    let shell: pty.IPty;
    try {
      shell = pty.spawn(options.shell, [], {
        name: 'xterm-256color',
        cols: 80,
        rows: 24,
        cwd,
        env: { ...options.env, TERM: 'xterm-256color', COLORTERM: 'truecolor' },
      });
    } catch (error) {
      logger.error('could not start the shell', { error, shell: options.shell });
      ws.close(1011, `could not start ${options.shell}`);
      return;
    }
    logger.info('terminal session started', { pid: shell.pid });
    let pending = 0;
    let paused = false;
    shell.onData((data) => {
      if (ws.readyState !== ws.OPEN) return;
      const size = Buffer.byteLength(data);
      pending += size;
      ws.send(data, () => {
        pending -= size;
        if (paused && pending < LOW_WATER_BYTES) {
          paused = false;
          shell.resume();
        }
      });
      if (!paused && pending > HIGH_WATER_BYTES) {
        paused = true;
        shell.pause();
      }
    });
    shell.onExit(({ exitCode }) => {
      logger.info('terminal session ended', { pid: shell.pid, exitCode });
      ws.close(1000, `shell exited with code ${exitCode}`);
    });
    ws.on('message', (raw: RawData) => {
      const message = parseMessage(raw);
      if (message?.type === 'input') shell.write(message.data);
      else if (message?.type === 'resize') shell.resize(message.cols, message.rows);
    });
    ws.on('close', () => {
      sockets.delete(ws);
      try {
        shell.kill('SIGHUP');
      } catch {
        // Already gone.
      }
    });
  }

  return {
    router,
    handleUpgrade(req, socket, head, basePath) {
      const pathname = (req.url ?? '').split('?')[0];
      if (pathname !== `${basePath}pty`) return false;
      wss.handleUpgrade(req, socket, head, startSession);
      return true;
    },
    close() {
      for (const ws of sockets) ws.close(1001, 'the agent is stopping');
      wss.close();
    },
  };
}

type TerminalMessage = { type: 'input'; data: string } | { type: 'resize'; cols: number; rows: number };

/** Accepts only well-formed messages; anything else is ignored rather than reaching the shell. */
function parseMessage(raw: RawData): TerminalMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString());
  } catch {
    return undefined;
  }
  const message = value as Partial<{ type: string; data: unknown; cols: unknown; rows: unknown }>;
  if (message.type === 'input' && typeof message.data === 'string') return { type: 'input', data: message.data };
  if (message.type === 'resize' && isDimension(message.cols) && isDimension(message.rows)) {
    return { type: 'resize', cols: message.cols, rows: message.rows };
  }
  return undefined;
}

function isDimension(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 1000;
}
