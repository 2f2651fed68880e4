import { readFileSync } from 'node:fs';
import { ConfigError, ConfigReader } from '../common/config';
import { createLogger, readLogSettings } from '../common/logger';
import { IDE_KINDS } from '../contracts/provider';
import { closeIde } from './ide';
import { createAgentApp } from './server';

/** The gitspace agent's entry point: configuration comes from the machine's bootstrap environment. */
function main(): void {
  const config = new ConfigReader(process.env);
  const gitspaceId = config.required('GITSPACE_ID', 'the gitspace this machine belongs to');
  const secret = config.include(() => readAgentSecret(config));
  const workspaceDir = config.required('GITSPACE_WORKSPACE_DIR', 'where the repository is cloned');
  // The gitspace user's home: the repository token is kept there for git's credential helper.
  const homeDir = config.string('HOME');
  const ide = config.oneOf('GITSPACE_IDE', IDE_KINDS, 'terminal');
  const host = config.string('GITSPACE_AGENT_HOST', '127.0.0.1');
  const port = config.port('GITSPACE_AGENT_PORT', 8089);
  const vscodeCommand = config.string('GITSPACE_VSCODE_COMMAND');
  const shell = config.string('GITSPACE_SHELL', config.string('SHELL', '/bin/bash'));
  const sftpServer = config.string('GITSPACE_SFTP_SERVER');
  const logSettings = config.include(() => readLogSettings(process.env));
  config.done();

  // The IDE's shells, VS Code and repository commands get the machine's environment, without where the secret is.
  const ideEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !SECRET_VARIABLES.includes(name)) ideEnv[name] = value;
  }

  const logger = createLogger(`agent:${gitspaceId}`, logSettings);
  const { server, closeSsh } = createAgentApp({
    gitspaceId,
    secret: secret!,
    workspaceDir,
    homeDir,
    ide,
    logger,
    ideHost: { vscodeCommand, shell, env: ideEnv, searchPath: ideEnv.PATH },
    sftpServer,
  });
  server.listen(port, host, () => logger.info('agent listening', { host, port, ide }));
  const shutdown = () => {
    closeIde(server);
    closeSsh();
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

/** Variables that say where the agent secret is: nothing the agent starts gets them. */
const SECRET_VARIABLES = ['GITSPACE_AGENT_SECRET_FD', 'GITSPACE_AGENT_SECRET_FILE'];

/**
 * The agent secret (the runner's key to the private API), from where the machine's bootstrap put it, never from the
 * environment (children and /proc/<agent>/environ would see it there): a file descriptor (GITSPACE_AGENT_SECRET_FD:
 * the local provider writes it to the agent's stdin and closes it) or a file (GITSPACE_AGENT_SECRET_FILE: the cloud
 * bootstrap's systemd credential).
 */
function readAgentSecret(config: ConfigReader): string {
  const fd = config.string('GITSPACE_AGENT_SECRET_FD');
  const file = config.string('GITSPACE_AGENT_SECRET_FILE');
  if (fd !== undefined && !/^\d+$/.test(fd)) {
    throw new ConfigError([`GITSPACE_AGENT_SECRET_FD must be a file descriptor, got '${fd}'`]);
  }
  const source = fd !== undefined ? Number(fd) : file;
  let secret: string | undefined;
  try {
    secret = source === undefined ? undefined : readFileSync(source, 'utf8').trim();
  } catch (error) {
    const where = fd !== undefined ? 'GITSPACE_AGENT_SECRET_FD' : 'GITSPACE_AGENT_SECRET_FILE';
    throw new ConfigError([`${where}: the agent secret cannot be read (${(error as Error).message})`]);
  }
  if (!secret) {
    throw new ConfigError([
      'the agent secret is required (the runner authenticates to the agent with it): ' +
        'GITSPACE_AGENT_SECRET_FD (a file descriptor) or GITSPACE_AGENT_SECRET_FILE',
    ]);
  }
  return secret;
}

try {
  main();
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
}
