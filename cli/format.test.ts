import { ApiError, LifecycleFailedError, UsageError } from './errors';
import {
  errorJson,
  formatElapsed,
  formatError,
  formatEvent,
  formatGitspace,
  formatGitspaceList,
  formatTime,
} from './format';
import type { Gitspace, GitspaceEvent } from './types';

const gitspace = (overrides: Partial<Gitspace> = {}): Gitspace => ({
  id: 'gs-abc',
  name: 'api',
  state: 'running',
  url: 'http://127.0.0.1:3001/gitspaces/gs-abc/',
  owner: 'usr-ada',
  repository: { url: 'https://git.example.com/org/api.git', hasToken: false },
  infrastructureId: 'local',
  machineId: 'local-default',
  ide: 'terminal',
  createdAt: '2026-12-02T09:15:03.123Z',
  updatedAt: '2026-12-02T09:16:00.000Z',
  ...overrides,
});

describe('errors as the user reads them', () => {
  it("shows the API's message, then each field problem on its own line under it", () => {
    const error = new ApiError(400, 'validation', 'request body is not valid', [
      { path: 'repository.url', message: "scheme 'ftp' is not supported" },
      { path: 'name', message: 'must not be empty' },
    ]);
    expect(formatError(error)).toEqual([
      'error: request body is not valid',
      "  repository.url: scheme 'ftp' is not supported",
      '  name: must not be empty',
    ]);
    expect(errorJson(error)).toEqual({
      error: {
        code: 'validation',
        message: 'request body is not valid',
        status: 400,
        fields: [
          { path: 'repository.url', message: "scheme 'ftp' is not supported" },
          { path: 'name', message: 'must not be empty' },
        ],
      },
    });
  });

  it('names the failed step (its words and its name), the cause and what to do next', () => {
    const error = new LifecycleFailedError(
      "start of gitspace 'api' failed at 'prepare the workspace': the repository could not be cloned",
      { action: 'start', step: 'prepareWorkspace', stepWords: 'prepare the workspace', cause: 'CloneFailedError' },
      'try it again with `gitspaces retry gs-abc`',
    );
    expect(formatError(error)).toEqual([
      "error: start of gitspace 'api' failed at 'prepare the workspace': the repository could not be cloned",
      '  step: prepare the workspace (prepareWorkspace)',
      '  cause: CloneFailedError',
      '  try it again with `gitspaces retry gs-abc`',
    ]);
    expect(errorJson(error).error).toMatchObject({ code: 'lifecycle_failed', step: 'prepareWorkspace' });
    expect(error.exitCode).toBe(1);
  });

  it('gives each kind of error its exit code', () => {
    expect(new UsageError('x').exitCode).toBe(2);
    expect(new ApiError(401, 'unauthorized', 'token not valid').exitCode).toBe(3);
  });
});

describe('events', () => {
  const event = (overrides: Partial<GitspaceEvent>): GitspaceEvent => ({
    seq: 3,
    type: 'step',
    message: 'prepare the workspace',
    data: { step: 'prepareWorkspace' },
    actor: { type: 'user', id: 'usr-ada', name: 'ada' },
    createdAt: '2026-12-02T09:15:03.456Z',
    ...overrides,
  });

  it('shows time, actor, step or state, and message on one line', () => {
    expect(formatEvent(event({}))).toEqual(['2026-12-02 09:15:03Z  ada           step       prepare the workspace']);
    expect(
      formatEvent(
        event({ type: 'state', state: 'running', message: 'gitspace running', actor: { type: 'reconciler' } }),
      ),
    ).toEqual(['2026-12-02 09:15:03Z  reconciler    running    gitspace running']);
  });

  it("adds a failure's cause under it", () => {
    const failed = event({
      type: 'state',
      state: 'error',
      message: "start failed at 'prepare the workspace': the repository could not be cloned",
      data: {
        action: 'start',
        step: 'prepareWorkspace',
        message: 'the repository could not be cloned',
        cause: 'CloneFailedError',
      },
    });
    expect(formatEvent(failed)).toEqual([
      "2026-12-02 09:15:03Z  ada           error      start failed at 'prepare the workspace': the repository could not be cloned",
      '                      cause: CloneFailedError',
    ]);
  });
});

describe('gitspaces', () => {
  it('lists them as a table with columns as wide as their widest cell', () => {
    expect(
      formatGitspaceList([
        gitspace(),
        gitspace({
          id: 'gs-def',
          name: 'web frontend',
          state: 'stopped',
          ide: 'vscode-web',
          repository: { url: 'git://h/w', branch: 'dev', hasToken: true },
        }),
      ]),
    ).toEqual([
      'NAME          STATE    IDE         REPOSITORY                           ID',
      'api           running  terminal    https://git.example.com/org/api.git  gs-abc',
      'web frontend  stopped  vscode-web  git://h/w (dev)                      gs-def',
    ]);
    expect(formatGitspaceList([])).toEqual(['no gitspaces']);
  });

  it('shows one with its last error in words and without the fields it does not have', () => {
    const lines = formatGitspace(
      gitspace({
        state: 'error',
        url: undefined,
        lastError: {
          action: 'start',
          step: 'waitForAgent',
          message: 'the agent did not answer',
          cause: 'AgentUnhealthyError',
        },
      }),
    );
    expect(lines).toContain(
      "last error:     start failed at 'wait for the gitspace agent': the agent did not answer [AgentUnhealthyError]",
    );
    expect(lines.some((line) => line.startsWith('url:'))).toBe(false);
    expect(lines.some((line) => line.startsWith('repository token:'))).toBe(false);
    expect(lines[0]).toBe('name:           api');
  });
});

describe('time', () => {
  it('shows elapsed time in seconds, then minutes, then hours', () => {
    expect(formatElapsed(0)).toBe('0s');
    expect(formatElapsed(12_999)).toBe('12s');
    expect(formatElapsed(65_000)).toBe('1m05s');
    expect(formatElapsed(3_720_000)).toBe('1h02m');
  });
  it('shows times in UTC to the second', () => {
    expect(formatTime('2026-12-02T09:15:03.999Z')).toBe('2026-12-02 09:15:03Z');
  });
});
