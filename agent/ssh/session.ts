import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import * as pty from 'node-pty';
import type { PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { Logger } from '../../common/logger';

/** What every SSH session of a gitspace runs with: the same shell and environment as its browser terminal. */
export interface SessionOptions {
  /** The shell that runs commands (`<shell> -c <command>`) and interactive sessions. */
  shell: string;
  /** The environment the IDE's shells get (without the agent's secrets); the client may add only ENV_ALLOWED. */
  env: Record<string, string>;
  workspaceDir: string;
  /** The sftp-server binary; unset: the first of SFTP_SERVER_PATHS that exists. */
  sftpServer?: string;
  logger: Logger;
}

/** Where distributions install OpenSSH's sftp-server (Debian, Fedora/RHEL, Arch). */
export const SFTP_SERVER_PATHS = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/lib/ssh/sftp-server',
];

/** Variables a client may send (OpenSSH's `SendEnv` defaults): the terminal type and the locale, nothing else. */
const ENV_ALLOWED = /^(TERM|LANG|LC_[A-Z_]+)$/;

/** Signals a client may send to its command (RFC 4254 §6.10 names, without `SIG`). */
const SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'KILL',
  'PIPE',
  'QUIT',
  'SEGV',
  'TERM',
  'USR1',
  'USR2',
]);

/** A command that runs for a session: what the client may still do to it. */
type Running = { resize(cols: number, rows: number): void; signal(name: string): void; hangUp(): void };

/**
 * Serves one session channel: `exec` and `shell` (in a pseudo-terminal when the client asked for one, else with
 * pipes), the `sftp` subsystem, `env`, `window-change` and `signal`. X11 and agent forwarding have no handler, so
 * ssh2 refuses them.
 */
export function serveSession(session: Session, options: SessionOptions): void {
  const env: Record<string, string> = { ...options.env };
  let terminal: { term: string; cols: number; rows: number } | undefined;
  let running: Running | undefined;

  session.on('pty', (accept, _reject, info: PseudoTtyInfo & { term?: string }) => {
    terminal = { term: info.term || 'xterm-256color', cols: info.cols || 80, rows: info.rows || 24 };
    accept?.();
  });
  session.on('env', (accept, reject, { key, val }) => {
    if (!ENV_ALLOWED.test(key)) return reject?.();
    env[key] = val;
    accept?.();
  });
  session.on('window-change', (accept, _reject, { cols, rows }) => {
    if (cols > 0 && rows > 0) running?.resize(cols, rows);
    accept?.();
  });
  session.on('signal', (accept, reject, { name }) => {
    const bare = name.replace(/^SIG/, '');
    if (!running || !SIGNALS.has(bare)) return reject?.();
    running.signal(`SIG${bare}`);
    accept?.();
  });
  session.on('shell', (accept) => {
    running = start(accept(), undefined);
  });
  session.on('exec', (accept, _reject, { command }) => {
    running = start(accept(), command);
  });
  session.on('subsystem', (accept, reject, { name }) => {
    if (name !== 'sftp') return reject?.();
    const channel = accept();
    const server = sftpServerPath(options.sftpServer);
    if (!server) {
      options.logger.warn('sftp refused: no sftp-server on this machine', { tried: SFTP_SERVER_PATHS });
      channel.stderr.write(
        'sftp is not available on this gitspace: install openssh-sftp-server (or set GITSPACE_SFTP_SERVER); ' +
          'meanwhile `scp -O` copies files without it\n',
      );
      channel.exit(1);
      channel.end();
      return;
    }
    running = runPiped(channel, server, [], workingDir(options.workspaceDir), env);
  });
  session.on('close', () => running?.hangUp());

  function start(channel: ServerChannel, command: string | undefined): Running {
    const args = command === undefined ? [] : ['-c', command];
    const cwd = workingDir(options.workspaceDir);
    options.logger.info('ssh session started', { kind: command === undefined ? 'shell' : 'exec', pty: !!terminal });
    if (terminal) return runInTerminal(channel, options.shell, args, cwd, { ...env, TERM: terminal.term }, terminal);
    return runPiped(channel, options.shell, args, cwd, env);
  }
}

/** The configured sftp-server, or the first installed one; undefined when there is none. */
function sftpServerPath(configured: string | undefined): string | undefined {
  if (configured !== undefined) return existsSync(configured) ? configured : undefined;
  return SFTP_SERVER_PATHS.find((candidate) => existsSync(candidate));
}

/** Before the first clone the workspace does not exist yet: sessions start in its parent instead of failing. */
function workingDir(workspaceDir: string): string {
  return existsSync(workspaceDir) ? workspaceDir : path.dirname(workspaceDir);
}

/** Runs a command in a pseudo-terminal; its output is paused while the client is slow to take it. */
function runInTerminal(
  channel: ServerChannel,
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  size: { term: string; cols: number; rows: number },
): Running {
  let child: pty.IPty;
  try {
    child = pty.spawn(file, args, { name: size.term, cols: size.cols, rows: size.rows, cwd, env });
  } catch (error) {
    return failToStart(channel, file, error);
  }
  child.onData((data) => {
    if (!channel.write(data)) {
      child.pause();
      channel.once('drain', () => child.resume());
    }
  });
  channel.on('data', (data: Buffer) => child.write(data)); // Bytes: a character split across packets stays whole.
  child.onExit(({ exitCode, signal }) => finish(channel, exitCode, signal ? signalName(signal) : undefined));
  return {
    resize: (cols, rows) => child.resize(cols, rows),
    signal: (name) => child.kill(name),
    hangUp: () => {
      try {
        child.kill('SIGHUP');
      } catch {
        // Already gone.
      }
    },
  };
}

/** Runs a command with pipes: `pipe` gives both directions backpressure. */
function runPiped(
  channel: ServerChannel,
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Running {
  const child = spawn(file, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let ended = false;
  const end = (code: number, signal: string | undefined) => {
    if (ended) return;
    ended = true;
    finish(channel, code, signal);
  };
  child.on('error', (error) => {
    channel.stderr.write(`could not start ${file}: ${error.message}\n`);
    end(127, undefined);
  });
  child.stdin.on('error', () => undefined); // The command may exit before reading everything it was sent.
  channel.pipe(child.stdin);
  child.stdout.pipe(channel, { end: false });
  child.stderr.pipe(channel.stderr, { end: false });
  child.on('close', (code, signal) => end(code ?? 0, signal ?? undefined));
  return {
    resize: () => undefined,
    signal: (name) => child.kill(name as NodeJS.Signals),
    hangUp: () => child.kill('SIGHUP'),
  };
}

/** Sends the exit status, or the signal (without `SIG`) that ended the command, then closes the channel. */
function finish(channel: ServerChannel, code: number, signal: string | undefined): void {
  if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
  else channel.exit(code);
  channel.end();
}

function failToStart(channel: ServerChannel, file: string, error: unknown): Running {
  channel.stderr.write(`could not start ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
  finish(channel, 127, undefined);
  return { resize: () => undefined, signal: () => undefined, hangUp: () => undefined };
}

function signalName(signal: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, number]) => number === signal)?.[0];
}
