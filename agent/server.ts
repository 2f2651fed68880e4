import express from 'express';
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../common/logger';
import type { IdeKind } from '../providers/types';
import { CloneFailedError, cloneRepository, type RepositorySource } from './git';
import { LifecycleCommandError, readLifecycleCommands, runLifecycleCommand } from './devcontainer';
import { mountIde, type IdeOptions } from './ide';

export interface AgentOptions {
  gitspaceId: string;
  /** Bearer secret for the private `/_agent/*` API that the runner calls. */
  secret: string;
  workspaceDir: string;
  ide: IdeKind;
  logger: Logger;
  lifecycleCommandTimeoutMs?: number;
  /** How the IDE runs: VS Code command, shell, the environment it gets (see agent/ide). */
  ideHost?: Pick<IdeOptions, 'vscodeCommand' | 'shell' | 'env' | 'searchPath'>;
}

export type WorkspaceStatus = 'empty' | 'preparing' | 'ready' | 'failed';

/**
 * The gitspace agent: runs inside the gitspace machine, prepares the workspace when the runner asks, and reports its
 * health. The private API lives under `/_agent/`; every other path belongs to the IDE.
 */
export function createAgentApp(options: AgentOptions): { app: express.Express; server: http.Server } {
  const { logger } = options;
  const app = express();
  const server = http.createServer(app);
  let status: WorkspaceStatus = 'empty';
  let preparing: Promise<PrepareResult> | undefined;

  app.get('/_agent/healthz', (_req, res) => {
    res.json({ status: 'ok', gitspaceId: options.gitspaceId, workspace: status, ide: options.ide });
  });

  app.post('/_agent/workspace', express.json({ limit: '64kb' }), (req, res) => {
    if (!isAuthorized(req.headers.authorization, options.secret)) {
      res.status(401).json({ error: { code: 'unauthorized', message: 'the agent secret is missing or wrong' } });
      return;
    }
    const body = req.body as { repository?: RepositorySource; firstStart?: boolean } | undefined;
    if (!body?.repository || typeof body.repository.url !== 'string') {
      res.status(400).json({ error: { code: 'invalid_request', message: 'repository.url is required' } });
      return;
    }
    // Concurrent calls (a retried activity) share one preparation instead of cloning twice.
    preparing ??= prepareWorkspace(body.repository, options).finally(() => {
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
        const known = error instanceof CloneFailedError || error instanceof LifecycleCommandError;
        logger.warn('workspace preparation failed', { error });
        res.status(known ? 422 : 500).json({
          error: {
            code: known ? error.name : 'internal',
            message: error instanceof Error ? error.message : String(error),
          },
        });
      },
    );
  });

  mountIde(app, server, {
    ide: options.ide,
    workspaceDir: options.workspaceDir,
    gitspaceId: options.gitspaceId,
    logger,
    ...options.ideHost,
  });
  return { app, server };
}

interface PrepareResult {
  clone: 'cloned' | 'present';
  ranCommands: string[];
}

async function prepareWorkspace(repository: RepositorySource, options: AgentOptions): Promise<PrepareResult> {
  const clone = await cloneRepository(repository, options.workspaceDir);
  const commands = await readLifecycleCommands(options.workspaceDir);
  const timeout = options.lifecycleCommandTimeoutMs ?? 10 * 60_000;
  const ranCommands: string[] = [];
  if (clone === 'cloned' && commands.postCreateCommand) {
    await runLifecycleCommand('postCreateCommand', commands.postCreateCommand, options.workspaceDir, timeout);
    ranCommands.push('postCreateCommand');
  }
  if (commands.postStartCommand) {
    await runLifecycleCommand('postStartCommand', commands.postStartCommand, options.workspaceDir, timeout);
    ranCommands.push('postStartCommand');
  }
  options.logger.info('workspace ready', { clone, ranCommands });
  return { clone, ranCommands };
}

function isAuthorized(header: string | undefined, secret: string): boolean {
  const expected = Buffer.from(`Bearer ${secret}`);
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
