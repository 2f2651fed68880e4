import express from 'express';
import http from 'node:http';
import os from 'node:os';
import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  ROUTE_SECRET_HEADER,
  ROUTE_SECRET_PATTERN,
  SSH_KEYS_HEADER,
  decodePathFully,
  gatewayPathKind,
} from '../common/gateway-route';
import type { Logger } from '../common/logger';
import type { IdeKind } from '../contracts/provider';
import { CloneFailedError, cloneRepository, gitCredentialsFile, type RepositorySource } from './git';
import { repositoryNetworksSchema, type RepositoryNetworks } from './repository-address';
import { LifecycleCommandError, readLifecycleCommands, runLifecycleCommand } from './devcontainer';
import { loadOrCreateHostKey, type HostKey } from './ssh/host-key';
import { createSshServer, type SshServer } from './ssh/server';
import { mountIde, type IdeOptions } from './ide';
import { VSCODE_REMEDY, VscodeNotInstalledError, VscodeStartError } from './ide/vscode';

export interface AgentOptions {
  gitspaceId: string;
  /** Bearer secret for the private `/_agent/*` API that the runner calls. */
  secret: string;
  workspaceDir: string;
  /** The gitspace user's home, where the repository token is kept for git's credential helper (default: HOME). */
  homeDir?: string;
  ide: IdeKind;
  logger: Logger;
  lifecycleCommandTimeoutMs?: number;
  /** OpenSSH's sftp-server for SSH sessions (GITSPACE_SFTP_SERVER); default: the first installed one. */
  sftpServer?: string;
  /** How the IDE runs: VS Code command, shell, the environment it gets (see agent/ide). */
  ideHost?: Pick<IdeOptions, 'vscodeCommand' | 'shell' | 'env' | 'searchPath' | 'vscodeStartTimeoutMs'>;
}

export type WorkspaceStatus = 'empty' | 'preparing' | 'ready' | 'failed';

/**
 * The gitspace agent: runs inside the gitspace machine, prepares the workspace when the runner asks, and reports its
 * health. The private API lives under `/_agent/`; every other path belongs to the IDE.
 */
export function createAgentApp(options: AgentOptions): {
  app: express.Express;
  server: http.Server;
  /** Ends every SSH connection (the agent is stopping). */
  closeSsh(): void;
} {
  const { logger } = options;
  const app = express();
  const server = http.createServer(app);
  let status: WorkspaceStatus = 'empty';
  let preparing: Promise<PrepareResult> | undefined;
  // Set by the runner on every start (PUT /_agent/route); until then nothing but the health check answers.
  let routeSecret: string | undefined;
  // Made with the host key when the first route is set: SSH is reachable only through a route.
  let ssh: SshServer | undefined;
  // Whether the IDE failed its last readiness check (health then says `ide: 'unavailable'`).
  let ideUnavailable = false;

  // The one door check, before any route: the health check is open; the private API wants the runner's agent secret;
  // everything else (the IDE) wants the route secret that only the gateway adds (common/gateway-route.ts).
  app.use((req, res, next) => {
    const door = doorOf(req.method, req.url);
    if (door === 'health') return next();
    const allowed =
      door === 'private'
        ? isAuthorized(req.headers.authorization, `Bearer ${options.secret}`)
        : routeSecret !== undefined && isAuthorized(req.headers[ROUTE_SECRET_HEADER], routeSecret);
    if (allowed && isGatewayDoor(door)) {
      res.status(404).json({ error: { code: 'not_found', message: 'SSH goes over a WebSocket: use `gitspaces ssh`' } });
      return;
    }
    if (allowed) return next();
    res.status(401).set('cache-control', 'no-store');
    res.json({
      error: {
        code: 'unauthorized',
        message:
          door === 'private'
            ? 'the agent secret is missing or wrong'
            : 'this gitspace is reached only through its gateway',
      },
    });
  });

  app.get('/_agent/healthz', (_req, res) => {
    res.json({
      status: 'ok',
      gitspaceId: options.gitspaceId,
      workspace: status,
      ide: ideUnavailable ? 'unavailable' : options.ide,
    });
  });

  // The runner's proof that it talks to an agent of this start (its secret is rotated on every start).
  app.get('/_agent/session', (_req, res) => {
    res.json({ gitspaceId: options.gitspaceId, routeSecretSet: routeSecret !== undefined });
  });

  // Answers with the gitspace's SSH host key, which the runner passes on to the control plane.
  app.put('/_agent/route', express.json({ limit: '4kb' }), async (req, res) => {
    const secret = (req.body as { secret?: unknown } | undefined)?.secret;
    if (typeof secret !== 'string' || !ROUTE_SECRET_PATTERN.test(secret)) {
      res.status(400).json({ error: { code: 'invalid_request', message: 'secret must be 43+ base64url characters' } });
      return;
    }
    let hostKey: HostKey;
    try {
      hostKey = await loadOrCreateHostKey(options.homeDir ?? os.homedir(), options.gitspaceId);
    } catch (error) {
      logger.error('the SSH host key cannot be loaded or created', { error });
      res.status(500).json({ error: { code: 'ssh_host_key', message: (error as Error).message } });
      return;
    }
    ssh ??= createSshServer({
      hostKey,
      shell: options.ideHost?.shell ?? '/bin/bash',
      env: options.ideHost?.env ?? {},
      workspaceDir: options.workspaceDir,
      sftpServer: options.sftpServer,
      logger: logger.child('ssh'),
    });
    routeSecret = secret;
    res.json({ sshHostKey: hostKey.publicKey });
  });

  app.post('/_agent/workspace', express.json({ limit: '64kb' }), (req, res) => {
    const body = req.body as { repository?: RepositorySource; repositoryNetworks?: unknown } | undefined;
    if (!body?.repository || typeof body.repository.url !== 'string') {
      res.status(400).json({ error: { code: 'invalid_request', message: 'repository.url is required' } });
      return;
    }
    // The infrastructure's rule for internal networks, from the runner; absent means none is allowed.
    const networks = repositoryNetworksSchema.safeParse(body.repositoryNetworks ?? {});
    if (!networks.success) {
      res.status(400).json({
        error: {
          code: 'invalid_request',
          message: 'repositoryNetworks takes allowLoopback and allowPrivate (booleans)',
        },
      });
      return;
    }
    // Concurrent calls (a retried activity) share one preparation instead of cloning twice.
    // The IDE is started (and waited for) once the workspace exists: a start whose IDE cannot run fails here.
    preparing ??= prepareWorkspace(body.repository, networks.data, options)
      .then(async (result) => {
        await ide.ready().then(
          () => (ideUnavailable = false),
          (error: unknown) => {
            ideUnavailable = true;
            throw error;
          },
        );
        return result;
      })
      .finally(() => {
        preparing = undefined;
      });
    status = 'preparing';
    preparing.then(
      (result) => {
        status = 'ready';
        res.json(result);
      },
      (error: unknown) => {
        status = 'failed';
        const vscode = error instanceof VscodeNotInstalledError || error instanceof VscodeStartError;
        const known = vscode || error instanceof CloneFailedError || error instanceof LifecycleCommandError;
        logger.warn('workspace preparation failed', { error });
        const message = error instanceof Error ? error.message : String(error);
        res.status(known ? 422 : 500).json({
          error: {
            code: known ? error.name : 'internal',
            message: vscode ? `VS Code cannot run on this gitspace: ${message}. To fix it: ${VSCODE_REMEDY}` : message,
          },
        });
      },
    );
  });

  const ide = mountIde(app, server, {
    authorizeUpgrade: (req) =>
      doorOf(req.method ?? 'GET', req.url ?? '/') === 'ide' &&
      routeSecret !== undefined &&
      isAuthorized(req.headers[ROUTE_SECRET_HEADER], routeSecret),
    ide: options.ide,
    workspaceDir: options.workspaceDir,
    gitspaceId: options.gitspaceId,
    logger,
    ...options.ideHost,
  });
  // SSH upgrades go to the SSH server, never the IDE: one listener decides, so the IDE's (which mountIde put on the
  // server) sees only the others.
  const ideUpgrade = server.listeners('upgrade');
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const door = doorOf(req.method ?? 'GET', req.url ?? '/');
    if (!isGatewayDoor(door)) {
      for (const listener of ideUpgrade) listener.call(server, req, socket, head);
      return;
    }
    socket.on('error', () => socket.destroy());
    const keys = req.headers[SSH_KEYS_HEADER];
    if (routeSecret === undefined || !isAuthorized(req.headers[ROUTE_SECRET_HEADER], routeSecret)) {
      refuseUpgrade(socket, '401 Unauthorized');
    } else if (door !== 'ssh' || !ssh) {
      refuseUpgrade(socket, '404 Not Found');
    } else if (typeof keys !== 'string' || keys.trim() === '') {
      // Only the gateway adds the key list, from a verified token: an upgrade without one is not the gateway's.
      refuseUpgrade(socket, '403 Forbidden');
    } else {
      ssh.handleUpgrade(
        req,
        socket,
        head,
        keys.split(',').map((key) => key.trim()),
      );
    }
  });
  return { app, server, closeSsh: () => ssh?.close() };
}

function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
}

interface PrepareResult {
  clone: 'cloned' | 'present';
  ranCommands: string[];
}

async function prepareWorkspace(
  repository: RepositorySource,
  networks: RepositoryNetworks,
  options: AgentOptions,
): Promise<PrepareResult> {
  const clone = await cloneRepository(repository, options.workspaceDir, {
    networks,
    credentialsFile: gitCredentialsFile(options.homeDir ?? os.homedir(), options.gitspaceId),
    logger: options.logger,
  });
  const commands = await readLifecycleCommands(options.workspaceDir);
  const timeout = options.lifecycleCommandTimeoutMs ?? 10 * 60_000;
  const env = options.ideHost?.env ?? {};
  const ranCommands: string[] = [];
  if (clone === 'cloned' && commands.postCreateCommand) {
    await runLifecycleCommand('postCreateCommand', commands.postCreateCommand, options.workspaceDir, timeout, env);
    ranCommands.push('postCreateCommand');
  }
  if (commands.postStartCommand) {
    await runLifecycleCommand('postStartCommand', commands.postStartCommand, options.workspaceDir, timeout, env);
    ranCommands.push('postStartCommand');
  }
  options.logger.info('workspace ready', { clone, ranCommands });
  return { clone, ranCommands };
}

/**
 * Which credential a request needs: none (the health check), the agent secret (private API) or the route secret (the
 * IDE, and the gateway's own paths: the SSH tunnel and the other reserved ones).
 */
type Door = 'health' | 'private' | 'ide' | 'ssh' | 'reserved';

function doorOf(method: string, url: string): Door {
  // A target in absolute form (`GET http://host/_agent/session`) is routed by the path inside it: rather than parse it
  // a second way, it gets the strictest door (the gateway always sends a path).
  if (!url.startsWith('/')) return 'private';
  const path = decodePathFully(url.split('?', 1)[0]!);
  if (path === undefined) return 'private'; // Undecodable: the strictest door.
  if (path.toLowerCase() === '/_agent/healthz' && (method === 'GET' || method === 'HEAD')) return 'health';
  // The same reading of the path as the gateway's, so neither lets through what the other keeps out.
  const kind = gatewayPathKind(path);
  if (kind === 'agent-private') return 'private';
  return kind === 'ssh-renew' ? 'reserved' : kind; // The gateway answers renewals itself.
}

/** The gateway's own paths: never the IDE's, whatever the IDE would make of them. */
function isGatewayDoor(door: Door): boolean {
  return door === 'ssh' || door === 'reserved';
}

/** Constant-time comparison of a header with the expected value. */
function isAuthorized(header: string | string[] | undefined, expected: string): boolean {
  if (typeof header !== 'string') return false;
  const want = Buffer.from(expected);
  const given = Buffer.from(header);
  return given.length === want.length && timingSafeEqual(given, want);
}
