import { ApiError, UsageError } from './errors';
import { namedGitspaces, pickOne } from './resolve';
import type { Gitspace } from './types';

const gitspace = (id: string, name: string, state: Gitspace['state'], owner = 'usr-ada'): Gitspace => ({
  id,
  name,
  state,
  owner,
  repository: { url: 'git://h/r', hasToken: false },
  infrastructureId: 'local',
  machineId: 'local-default',
  ide: 'terminal',
  createdAt: '2026-12-02T09:15:03Z',
  updatedAt: '2026-12-02T09:15:03Z',
});

describe('naming a gitspace by name', () => {
  const all = [
    gitspace('gs-1', 'api', 'deleted'),
    gitspace('gs-2', 'api', 'running'),
    gitspace('gs-3', 'web', 'deleted'),
    gitspace('gs-4', 'twin', 'stopped', 'usr-ada'),
    gitspace('gs-5', 'twin', 'running', 'usr-bob'),
  ];

  it('means the live gitspace of that name, not a deleted one that had it before', () => {
    expect(pickOne('api', namedGitspaces('api', all)).id).toBe('gs-2');
  });

  it('means a deleted gitspace when no live one has the name (its events stay readable)', () => {
    expect(pickOne('web', namedGitspaces('web', all)).id).toBe('gs-3');
  });

  it('is a usage error listing the candidates when two have the name', () => {
    const choose = () => pickOne('twin', namedGitspaces('twin', all));
    expect(choose).toThrow(UsageError);
    expect(choose).toThrow(
      "2 gitspaces are named 'twin': gs-4 (owner usr-ada, stopped), gs-5 (owner usr-bob, running); name one by its id",
    );
  });

  it('is not found (as the API would say: 404, exit 3) when none has it', () => {
    const choose = () => pickOne('nope', namedGitspaces('nope', all));
    expect(choose).toThrow(ApiError);
    expect(choose).toThrow("no gitspace has the name or id 'nope'");
  });
});
