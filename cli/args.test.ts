import { gitspaceNameFromRepository, normalizeApiUrl, parseSeconds, parseStates } from './args';
import { UsageError } from './errors';

describe('normalizeApiUrl', () => {
  it.each([
    ['http://127.0.0.1:3000', 'http://127.0.0.1:3000'],
    ['http://127.0.0.1:3000/', 'http://127.0.0.1:3000'],
    ['http://127.0.0.1:3000/api/v1', 'http://127.0.0.1:3000'],
    ['https://gitspaces.example.com/api/v1/', 'https://gitspaces.example.com'],
    ['https://example.com/gitspaces/api/v1', 'https://example.com/gitspaces'],
  ])('%s is the API at %s', (input, expected) => {
    expect(normalizeApiUrl(input)).toBe(expected);
  });

  it.each([
    ['not a url', /is not a URL/],
    ['ftp://example.com', /must be http:\/\/ or https:\/\//],
    ['https://me:secret@example.com', /must not carry a user name or password/],
    ['https://example.com/?token=x', /must not carry a query/],
  ])('refuses %s', (input, message) => {
    expect(() => normalizeApiUrl(input)).toThrow(UsageError);
    expect(() => normalizeApiUrl(input)).toThrow(message);
  });
});

describe('parseStates', () => {
  it('takes a comma-separated list of states, once each', () => {
    expect(parseStates('running,stopped')).toEqual(['running', 'stopped']);
    expect(parseStates(' error , error,running ')).toEqual(['error', 'running']);
  });

  it('names the unknown state and lists the known ones', () => {
    expect(() => parseStates('running,asleep')).toThrow(
      "unknown state 'asleep'; give one or more of stopped, starting, running, stopping, deleting, deleted, error",
    );
    expect(() => parseStates(',')).toThrow(UsageError);
  });
});

describe('parseSeconds', () => {
  it('takes a positive number of seconds', () => {
    expect(parseSeconds('30')).toBe(30);
    expect(parseSeconds('0.5')).toBe(0.5);
  });
  it.each(['0', '-1', 'soon', '', 'Infinity'])('refuses %p', (value) => {
    expect(() => parseSeconds(value)).toThrow(UsageError);
  });
});

describe('gitspaceNameFromRepository', () => {
  it.each([
    ['https://git.example.com/org/my-api.git', 'my-api'],
    ['ssh://git@git.example.com/org/repo', 'repo'],
    ['git://127.0.0.1:9418/hello/', 'hello'],
    ['https://git.example.com/org/odd name!.git', 'odd-name-'],
    ['https://git.example.com/org/.dotfiles', 'dotfiles'],
  ])('%s → %s', (url, name) => {
    expect(gitspaceNameFromRepository(url)).toBe(name);
  });

  it('asks for --name when the URL has no path to name it by', () => {
    expect(() => gitspaceNameFromRepository('https://git.example.com/')).toThrow('give one with --name');
  });
});
