import { execFileSync } from 'node:child_process';
import { completionScript, type CompletionSpec } from './completion';

const spec: CompletionSpec = {
  program: 'gitspaces',
  commands: [
    {
      name: 'create',
      description: 'create a gitspace',
      options: [
        { flag: '--ide', description: 'the IDE', takesValue: true, choices: ['vscode-web', 'terminal', 'ssh'] },
        { flag: '--no-wait', description: "don't wait", takesValue: false },
      ],
      argument: { name: 'repo-url' },
    },
    { name: 'show', description: "a gitspace's [state]", options: [], argument: { gitspace: true } },
    { name: 'completion', description: 'a script', options: [], argument: { choices: ['bash', 'zsh', 'fish'] } },
  ],
  globalOptions: [{ flag: '--json', description: 'JSON', takesValue: false }],
};

/** Runs bash's completion function on a command line as a user's shell would, with `__names` answering two names. */
function complete(line: string[]): string[] {
  const script = `
gitspaces() { if [[ "$1" == __names ]]; then printf 'api\\nweb frontend\\n'; fi; }
${completionScript('bash', spec)}
COMP_WORDS=(${line.map((word) => `'${word}'`).join(' ')}); COMP_CWORD=${line.length - 1}
_gitspaces
printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('bash completion', () => {
  it('completes commands, then their options and option values', () => {
    expect(complete(['gitspaces', 'c'])).toEqual(['create', 'completion']);
    expect(complete(['gitspaces', 'create', '--'])).toEqual(['--ide', '--no-wait', '--json']);
    expect(complete(['gitspaces', 'create', '--ide', 't'])).toEqual(['terminal']);
    expect(complete(['gitspaces', 'completion', ''])).toEqual(['bash', 'zsh', 'fish']);
  });

  it('completes gitspace names, one with a space included', () => {
    expect(complete(['gitspaces', 'show', ''])).toEqual(['api', 'web frontend']);
    expect(complete(['gitspaces', '--json', 'show', 'w'])).toEqual(['web frontend']);
  });
});

describe('zsh and fish completion', () => {
  it('describe every command, with descriptions that cannot break out of their quotes', () => {
    const zsh = completionScript('zsh', spec);
    expect(zsh).toContain("'show:a gitspace’s state'");
    expect(zsh).toContain("'--ide[the IDE]:ide:(vscode-web terminal ssh)'");
    expect(zsh).toContain("'1:gitspace:_gitspaces_names'");
    const fish = completionScript('fish', spec);
    expect(fish).toContain(
      "complete -c gitspaces -n '__fish_seen_subcommand_from create' -l ide -x -a 'vscode-web terminal ssh' -d 'the IDE'",
    );
    expect(fish).toContain(
      "complete -c gitspaces -n '__fish_seen_subcommand_from show' -a '(gitspaces __names 2>/dev/null)'",
    );
    expect(fish).toContain("-l no-wait -d 'don’t wait'");
  });

  it('refuses to write a word that is not plain into a script', () => {
    const bad: CompletionSpec = { ...spec, commands: [{ name: 'x; rm -rf ~', description: '', options: [] }] };
    expect(() => completionScript('bash', bad)).toThrow('not a plain word');
  });
});
